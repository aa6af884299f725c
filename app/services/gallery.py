"""The owner's public content: the prompt gallery (filters, "use this" counting, the /f/<key> pre-fill),
landing-page before/after examples, images uploaded for them, and the CMS pages the footer links to.

Uploaded images are decoded before they are stored (PNG, JPEG or WebP only, never SVG or HTML) and served
through the same type-checked, sandboxed headers as job files (services.storage).
"""
import io
import re

import sqlalchemy as sa
from PIL import Image, UnidentifiedImageError

from app.extensions import db
from app.models import LandingExample, Page, Prompt
from app.models.showcase import PROMPT_CATEGORIES
from app.services import cms, storage
from app.services.uploads import CONTENT_TYPES, SUFFIXES

PAGE_SIZE = 24
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")
TAG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
MAX_PROMPT_LENGTH = 5000
# CMS pages the footer links to when they exist and are published, in this order.
FOOTER_SLUGS = (("faq", "FAQ"), ("terms", "Terms"), ("privacy", "Privacy"), ("contact", "Contact"))


class ImageRefused(ValueError):
    """An upload that is not an image we serve; the message says what to upload instead."""


def check_image(data):
    """The content type of an uploaded image after decoding it; ImageRefused says what is wrong."""
    if not data:
        raise ImageRefused("The file is empty. Choose a PNG, JPEG or WebP image.")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageRefused(f"The file is {len(data) / 1048576:.1f} MB; upload at most "
                           f"{MAX_IMAGE_BYTES // 1048576} MB.")
    try:
        with Image.open(io.BytesIO(data), formats=list(IMAGE_FORMATS)) as img:
            fmt, (width, height) = img.format, img.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ImageRefused(f"The image is {width}×{height} pixels; the limit is {MAX_IMAGE_PIXELS:,}.")
            img.load()
    except ImageRefused:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError):
        raise ImageRefused("This file is not a PNG, JPEG or WebP image.") from None
    return CONTENT_TYPES[fmt]


def store_image(data):
    """(ref, content type) of an uploaded image, checked, then stored."""
    content_type = check_image(data)
    return storage.save(data, SUFFIXES[content_type]), content_type


def clean_tags(raw):
    """Tags typed as "Portrait, vintage look" → "portrait,vintage-look"; ValueError names a bad one."""
    tags = []
    for part in re.split(r"[,\n]+", raw or ""):
        tag = re.sub(r"\s+", "-", part.strip().lower())
        if not tag:
            continue
        if not TAG.fullmatch(tag) or len(tag) > 40:
            raise ValueError(f"{part.strip()!r} is not a tag: use letters, digits and hyphens (at most 40).")
        if tag not in tags:
            tags.append(tag)
    joined = ",".join(tags)
    if len(joined) > 500:
        raise ValueError("Too many tags: keep them under 500 characters in all.")
    return joined


def categories():
    return PROMPT_CATEGORIES


def category_label(value):
    return dict(PROMPT_CATEGORIES).get(value, value)


# --- the public gallery ---


def _published():
    return sa.select(Prompt).where(Prompt.is_published.is_(True))


def prompt_filters(args):
    """The filters a /prompts request asks for, cleaned: unknown values are dropped, never an error page."""
    category = args.get("category", "")
    tag = (args.get("tag") or "").strip().lower()
    function = (args.get("function") or "").strip()
    return {"category": category if category in dict(PROMPT_CATEGORIES) else "",
            "tag": tag if TAG.fullmatch(tag or "-") else "",
            "function": function if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", function) else ""}


def gallery(filters, page):
    """One page of published prompts under the filters, featured first, then the owner's order."""
    from app.models import AIFunction

    stmt = _published()
    if filters["category"]:
        stmt = stmt.where(Prompt.category == filters["category"])
    if filters["tag"]:
        stmt = stmt.where((sa.literal(",") + Prompt.tags + sa.literal(",")).like(f"%,{filters['tag']},%"))
    if filters["function"]:
        stmt = stmt.join(AIFunction, AIFunction.id == Prompt.function_id).where(AIFunction.key == filters["function"])
    stmt = stmt.order_by(Prompt.is_featured.desc(), Prompt.sort_order, Prompt.id)
    return db.paginate(stmt, page=page, per_page=PAGE_SIZE, error_out=False)


def usable(prompt):
    """The function a prompt opens, when the site lists it; None otherwise (the card offers no "use this")."""
    fn = prompt.function
    if fn is None:
        return None
    return fn if any(f.id == fn.id for f in cms.listed_functions()) else None


def use_prompt(prompt_id):
    """Count one use of a published prompt and return it (None when unknown or unpublished).

    Called by the POST behind "use this"; the redirect that follows is a GET, so a reload never counts twice.
    One conditional UPDATE: concurrent uses all count."""
    used = db.session.execute(
        sa.update(Prompt).where(Prompt.id == prompt_id, Prompt.is_published.is_(True))
        .values(usage_count=Prompt.usage_count + 1).returning(Prompt.id)).scalar()
    db.session.commit()
    return db.session.get(Prompt, used) if used else None


def prefill_for(fn, prompt_id):
    """Field values /f/<key>?prompt=<id> starts with: {"prompt": text} for a published prompt of this function
    (or of no function), {} for anything else. The page shows them; the server still validates the submit."""
    try:
        prompt = db.session.get(Prompt, int(prompt_id)) if prompt_id not in (None, "") else None
    except (TypeError, ValueError):
        return {}
    if prompt is None or not prompt.is_published or prompt.function_id not in (None, fn.id):
        return {}
    return {"prompt": prompt.prompt_text}


def preview_image(prompt_id):
    """(ref, content type) of a published prompt's preview, or None."""
    prompt = db.session.get(Prompt, prompt_id)
    if prompt is None or not prompt.is_published or not prompt.preview_ref:
        return None
    return prompt.preview_ref, prompt.preview_content_type


# --- landing page ---


def landing_examples():
    """Published before/after pairs that have both images, in the owner's order."""
    return db.session.scalars(
        sa.select(LandingExample).where(LandingExample.is_published.is_(True), LandingExample.before_ref.isnot(None),
                                        LandingExample.after_ref.isnot(None))
        .order_by(LandingExample.sort_order, LandingExample.id)).all()


def card_images(examples):
    """{function id: example} — the first example of each function illustrates its card."""
    images = {}
    for example in examples:
        if example.function_id is not None:
            images.setdefault(example.function_id, example)
    return images


def example_image(example_id, which):
    example = db.session.get(LandingExample, example_id)
    if example is None or not example.is_published:
        return None
    ref = example.before_ref if which == "before" else example.after_ref
    content_type = example.before_content_type if which == "before" else example.after_content_type
    return (ref, content_type) if ref else None


def featured_prompts(limit=6):
    return db.session.scalars(_published().where(Prompt.is_featured.is_(True))
                              .order_by(Prompt.sort_order, Prompt.id).limit(limit)).all()


def footer_links():
    """[(slug, label)] of the footer pages that exist and are published."""
    slugs = [slug for slug, _label in FOOTER_SLUGS]
    published = set(db.session.scalars(sa.select(Page.slug).where(Page.slug.in_(slugs),
                                                                  Page.is_published.is_(True))))
    return [(slug, label) for slug, label in FOOTER_SLUGS if slug in published]
