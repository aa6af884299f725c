"""What a customer may submit: the upload decoded and checked against the function's rules, and the daily
limits of the function and the customer's billing plan. A refusal is a SubmitError with words for the customer.
"""
import io

import sqlalchemy as sa
from flask import current_app
from PIL import Image, UnidentifiedImageError

from app.extensions import db
from app.models import Job
from app.models.types import utcnow

CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "TIFF": "image/tiff",
                 "BMP": "image/bmp", "GIF": "image/gif"}
SUFFIXES = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/tiff": ".tif",
            "image/bmp": ".bmp", "image/gif": ".gif"}


class SubmitError(Exception):
    """A refused submission: a message for the customer and the HTTP status that fits."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


# File signatures of the formats a function may allow: enough to name a refused format without decoding it.
SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
              (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"BM", "BMP"))


def _sniff(data):
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for magic, fmt in SIGNATURES if data.startswith(magic)), None)


def inspect_upload(fn, data, max_file_size=None):
    """Decode the image (never trust the file name) and check it against the function's rules.

    Only the decoders of the function's allowed formats may open it, and the pixel count is checked from the
    header before a single pixel is decoded: a refused upload costs no memory."""
    max_file_size = max_file_size or fn.max_file_size
    if not data:
        raise SubmitError("The file is empty. Choose an image to upload.")
    if len(data) > max_file_size:
        raise SubmitError(f"The file is {len(data) / 1048576:.1f} MB; {fn.name} accepts up to "
                          f"{max_file_size / 1048576:.1f} MB.", status=413)
    max_pixels = current_app.config["MAX_IMAGE_PIXELS"]
    try:
        with Image.open(io.BytesIO(data), formats=list(fn.allowed_formats)) as img:
            fmt, (width, height) = img.format, img.size
            if fmt not in fn.allowed_formats:  # a decoder may name a variant (JPEG → MPO)
                raise SubmitError(f"{fmt} images are not accepted by {fn.name}; use "
                                  f"{', '.join(fn.allowed_formats)}.", status=415)
            if width * height > max_pixels:
                raise SubmitError(f"The image is {width}×{height} pixels; the limit is {max_pixels:,} pixels.",
                                  status=413)
            img.load()
    except SubmitError:
        raise
    except Image.DecompressionBombError as exc:
        raise SubmitError(f"The image has too many pixels; the limit is {max_pixels:,} pixels.", status=413) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        sniffed = _sniff(data)
        if sniffed and sniffed not in fn.allowed_formats:
            raise SubmitError(f"{sniffed} images are not accepted by {fn.name}; use "
                              f"{', '.join(fn.allowed_formats)}.", status=415) from None
        raise SubmitError("This file is not a readable image (it may be damaged or truncated).") from exc
    return {"format": fmt, "width": width, "height": height, "size": len(data), "content_type": CONTENT_TYPES[fmt]}


def jobs_today(user_id, function_key=None):
    """Jobs a user started today (UTC) that count against limits: failed and cancelled ones do not."""
    midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    query = sa.select(sa.func.count()).select_from(Job).where(
        Job.user_id == user_id, Job.created_at >= midnight, Job.status.not_in(("failed", "cancelled")))
    if function_key is not None:
        query = query.where(Job.function_key == function_key)
    return db.session.scalar(query)


# What a billing plan may limit (Plan.limits), each a whole number, with the words the admin shows.
PLAN_LIMITS = {"jobs_per_day": "Jobs per day (all functions)",
               "jobs_per_day_per_function": "Jobs per day, per function",
               "max_file_size": "Largest upload (bytes; replaces the function's)",
               "queue_priority": "Queue priority (added to the function's)"}
NON_NEGATIVE = ("jobs_per_day", "jobs_per_day_per_function", "max_file_size")


def clean_plan_limits(data):
    """Plan limits checked: known names, whole numbers (only the priority may be negative). ValueError says
    what to fix."""
    if data in (None, ""):
        return {}
    if not isinstance(data, dict):
        raise ValueError('Limits must be a JSON object such as {"jobs_per_day": 100}.')
    cleaned = {}
    for key, value in data.items():
        if key not in PLAN_LIMITS:
            raise ValueError(f"{key!r} is not a plan limit; use {', '.join(PLAN_LIMITS)}.")
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ValueError(f"{PLAN_LIMITS[key]}: enter a whole number, not {value!r}.") from None
        if key in NON_NEGATIVE and number < 0:
            raise ValueError(f"{PLAN_LIMITS[key]}: use 0 or more.")
        cleaned[key] = number
    return cleaned


def plan_limits(user):
    """The user's billing plan limits (see Plan.limits): jobs_per_day, jobs_per_day_per_function, max_file_size,
    queue_priority. No plan, no extra limits."""
    return dict(user.plan.limits or {}) if user.plan is not None else {}


def check_daily_limits(user, fn, limits):
    checks = [(fn.daily_limit, fn.key, f"You have used {fn.name} {{n}} times today, its daily limit."),
              (limits.get("jobs_per_day_per_function"), fn.key,
               f"Your plan allows {{n}} {fn.name} jobs a day, and you have used them."),
              (limits.get("jobs_per_day"), None, "Your plan allows {n} jobs a day, and you have used them.")]
    for limit, key, message in checks:
        if limit and jobs_today(user.id, key) >= limit:
            raise SubmitError(message.format(n=limit) + " Try again tomorrow.", status=429)
