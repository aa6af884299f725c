"""The one path every job takes: submit (validate, debit, queue), run (provider call), cancel, retry, reap.

A rule lives here once; the site, the API, the admin and the worker all call these functions.
"""
import functools
import io
import logging
import time
from datetime import datetime, timedelta, timezone

import jsonschema
import sqlalchemy as sa
from flask import current_app
from PIL import Image, UnidentifiedImageError

from app.extensions import db
from app.models import AIFunction, Job, JobLog, User
from app.providers import registry
from app.providers.base import CancelledByUser, ProviderError, ProviderInput
from app.services import audit, catalog, credits, mail, outputs, permissions, queue, storage
from app.services.crypto import decrypt_json

log = logging.getLogger(__name__)

CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "TIFF": "image/tiff",
                 "BMP": "image/bmp", "GIF": "image/gif"}
SUFFIXES = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/tiff": ".tif",
            "image/bmp": ".bmp", "image/gif": ".gif"}
ACTIVE = ("queued", "processing")
CANCELLED = "Cancelled; the credits were refunded."
# What customers read about a job that ended without a result (Job.customer_message); the details that
# name providers, URLs and their answers stay in Job.error and the job log, which only staff see.
CUSTOMER_FAILED = "We could not process this image."
CUSTOMER_CANCELLED = "This job was cancelled."
# A job whose worker vanished is run again at most this many times in all, then failed and refunded.
MAX_CLAIMS = 2


class SubmitError(Exception):
    """A refused submission: a message for the customer and the HTTP status that fits."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def _now():
    return datetime.now(timezone.utc)


def add_log(job_id, message, level="info", **fields):
    # Added to the session, so a step's log lines are written in one batch with its commit.
    db.session.add(JobLog(job_id=job_id, message=message, level=level, **fields))


# --- submit ---


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


@functools.lru_cache(maxsize=None)
def _validator(plugin):
    """One compiled validator per plugin class: checking the schema itself on every job is slow."""
    cls = jsonschema.validators.validator_for(plugin.config_schema)
    cls.check_schema(plugin.config_schema)
    return cls(plugin.config_schema, format_checker=cls.FORMAT_CHECKER)


def config_errors(plugin, config):
    """Every way `config` breaks the plugin's schema, as "field: message", most relevant first."""
    errors = sorted(_validator(plugin).iter_errors(config), key=jsonschema.exceptions.relevance)
    return [f"{'/'.join(str(p) for p in e.absolute_path) or 'config'}: {e.message}" for e in errors]


def merged_config(provider, overrides, secrets=None):
    """Provider defaults ⊕ provider config ⊕ the function's overrides (params merged), plus secrets
    (decrypted from the provider unless given)."""
    plugin = registry.plugin_class(provider.key)
    base, extra = provider.config or {}, overrides or {}
    merged = {**plugin.defaults(), **base, **extra}
    merged["params"] = {**base.get("params", {}), **extra.get("params", {})}
    merged.update(decrypt_json(provider.secrets) if secrets is None else secrets)
    return merged


def effective_config(provider, overrides, secrets=None):
    """merged_config, validated against the plugin's schema; ProviderError names the first bad field."""
    plugin = registry.plugin_class(provider.key)
    merged = merged_config(provider, overrides, secrets)
    errors = config_errors(plugin, merged)
    if errors:
        raise ProviderError(f"Invalid {plugin.name} config at {errors[0]}")
    return merged


def steps(fn):
    """The providers a job of `fn` may use, in order: the primary, then each enabled fallback.

    Returns ([(provider, config)], [problem]); a step whose provider is disabled is left out and one
    whose config is invalid is reported as a problem, so the chain still runs on the rest."""
    chain = [(fn.provider, fn.provider_config)] + [(fb.provider, fb.provider_config) for fb in fn.fallbacks]
    usable, problems = [], []
    for provider, overrides in chain:
        if provider is None or not provider.enabled:
            continue
        try:
            usable.append((provider, effective_config(provider, overrides)))
        except (ProviderError, registry.UnknownProvider) as exc:
            problems.append(f"{provider.name}: {exc}")
    return usable, problems


def lease_seconds(plan):
    """How long a run of the whole chain may take before its worker is presumed dead."""
    total = sum(float(c.get("timeout", 300)) * (int(c.get("retries", 0)) + 1) for _p, c in plan)
    return total + current_app.config["JOB_LEASE_GRACE_SECONDS"]


def _jobs_today(user_id, function_key=None):
    """Jobs a user started today (UTC) that count against limits: failed and cancelled ones do not."""
    midnight = _now().replace(hour=0, minute=0, second=0, microsecond=0)
    query = sa.select(sa.func.count()).select_from(Job).where(
        Job.user_id == user_id, Job.created_at >= midnight, Job.status.not_in(("failed", "cancelled")))
    if function_key is not None:
        query = query.where(Job.function_key == function_key)
    return db.session.scalar(query)


def plan_limits(user):
    """The user's plan limits (see Plan.limits): jobs_per_day, jobs_per_day_per_function, max_file_size,
    queue_priority. No plan, no extra limits."""
    return dict(user.plan.limits or {}) if user.plan is not None else {}


def _check_daily_limits(user, fn, limits):
    checks = [(fn.daily_limit, fn.key, f"You have used {fn.name} {{n}} times today, its daily limit."),
              (limits.get("jobs_per_day_per_function"), fn.key,
               f"Your plan allows {{n}} {fn.name} jobs a day, and you have used them."),
              (limits.get("jobs_per_day"), None, "Your plan allows {n} jobs a day, and you have used them.")]
    for limit, key, message in checks:
        if limit and _jobs_today(user.id, key) >= limit:
            raise SubmitError(message.format(n=limit) + " Try again tomorrow.", status=429)


def submit(user, function_key, data, filename="upload"):
    """Validate, debit and queue one job; SubmitError (nothing debited, nothing queued) otherwise."""
    fn = catalog.visible_function(function_key)
    if fn is None:
        raise SubmitError("This tool is not available.", status=404)
    if user.is_banned:
        raise SubmitError("Your account is suspended.", status=403)
    if refusal := permissions.job_refusal(user):
        raise SubmitError(refusal, status=403)
    limits = plan_limits(user)
    meta = inspect_upload(fn, data, limits.get("max_file_size"))
    plan, problems = steps(fn)
    if not plan:
        log.error("function %s has no usable provider: %s", fn.key, "; ".join(problems))
        raise SubmitError("This tool is temporarily unavailable. Please try again later.", status=503)

    input_ref = storage.save(data, SUFFIXES[meta["content_type"]])
    try:
        # Serialise this user's submits so daily limits cannot be overrun by parallel requests.
        db.session.execute(sa.select(User.id).where(User.id == user.id).with_for_update())
        _check_daily_limits(user, fn, limits)
        job = Job(user_id=user.id, function_id=fn.id, function_key=fn.key, provider_id=plan[0][0].id,
                  provider_key=plan[0][0].key, status="queued", input_ref=input_ref, input_meta=meta,
                  credits_charged=fn.price_per_use)
        db.session.add(job)
        db.session.flush()
        if fn.price_per_use:
            credits.debit(user.id, fn.price_per_use, reason=f"{fn.name} (job #{job.id})", job_id=job.id)
        add_log(job.id, f"Submitted {meta['format']} {meta['width']}×{meta['height']}, "
                        f"charged {fn.price_per_use} credits")
        db.session.commit()
    except credits.InsufficientCredits as exc:
        db.session.rollback()
        storage.delete(input_ref)
        raise SubmitError(str(exc), status=402) from None
    except BaseException:
        db.session.rollback()
        storage.delete(input_ref)
        raise

    try:
        queue.enqueue(job.id, fn.priority + int(limits.get("queue_priority", 0)), lease_seconds(plan))
    except Exception:
        log.exception("job %s could not be queued", job.id)
        _finish(job.id, _queued(job.id), "The job queue is unavailable; your credits were refunded.",
                customer="We could not start this job.")
        raise SubmitError("We could not start this job right now; your credits were refunded. Please try again.",
                          status=503) from None
    return job


# --- run (in a worker) ---


def _claim(job_id, values):
    """queued → processing, atomically; None when the job is gone, cancelled or taken by another run."""
    return db.session.execute(
        sa.update(Job).where(Job.id == job_id, Job.status == "queued")
        .values(status="processing", started_at=_now(), claims=Job.claims + 1, error=None, **values)
        .returning(Job.claims, Job.input_ref, Job.input_meta, Job.cancel_requested)
    ).first()


def _still_mine(job_id, claim):
    return sa.and_(Job.id == job_id, Job.status == "processing", Job.claims == claim)


def _refund(job_id):
    """Give the job's credits back once, whatever path gets here first."""
    job = db.session.get(Job, job_id)
    if job.credits_charged and not job.refunded:
        granted = credits.grant(job.user_id, job.credits_charged, kind="refund", job_id=job.id,
                                reason=f"Refund for job #{job.id}", idempotency_key=f"refund:job:{job.id}")
        if granted is not None:
            add_log(job.id, f"Refunded {job.credits_charged} credits")
    job.refunded = True


def _finish(job_id, condition, message, status="failed", customer=None, also=None):
    """Move a job to failed/cancelled if `condition` still holds, and refund it once. True if it moved.

    `message` is for staff; `customer` is what the customer reads (a plain default when None). `also` runs
    only when the job moved, in the same transaction (the audit row of a staff cancel)."""
    customer = customer or (CUSTOMER_CANCELLED if status == "cancelled" else CUSTOMER_FAILED)
    moved = db.session.execute(
        sa.update(Job).where(condition).values(status=status, error=message, customer_message=customer,
                                               finished_at=_now(), lease_expires_at=None).returning(Job.id)
    ).scalar()
    if moved:
        add_log(job_id, message, level="error" if status == "failed" else "info")
        _refund(job_id)
        if status == "failed":
            mail.job_failed(job_id)
        if also is not None:
            also()
    db.session.commit()
    return bool(moved)


def customer_notice(job):
    """What the customer is told about a failed or cancelled job: plain words, the reference number and the
    refund. None while the job runs or once it is done."""
    if job.status not in ("failed", "cancelled"):
        return None
    default = CUSTOMER_CANCELLED if job.status == "cancelled" else CUSTOMER_FAILED
    words = [job.customer_message or default, f"Reference: job #{job.id}."]
    if job.refunded and job.credits_charged:
        words.append(f"The {job.credits_charged} credits it cost were refunded to your balance.")
    return " ".join(words)


def _queued(job_id):
    return sa.and_(Job.id == job_id, Job.status == "queued")


def _cancel_requested(job_id):
    return bool(db.session.scalar(sa.select(Job.cancel_requested).where(Job.id == job_id)))


def run(job_id):
    """Process one job with the function and provider rows as they are now in the database."""
    # Read fresh, before claiming: an admin's last edit decides this run.
    fn = db.session.scalars(sa.select(AIFunction).join(Job, Job.function_id == AIFunction.id)
                            .where(Job.id == job_id)).first()
    plan, problems = steps(fn) if fn else ([], ["This tool was removed before the job ran."])
    first = plan[0][0] if plan else None
    values = {"provider_id": first.id, "provider_key": first.key,
              "lease_expires_at": _now() + timedelta(seconds=lease_seconds(plan))} if plan else {}
    claimed = _claim(job_id, values)
    if claimed is None:
        db.session.commit()
        return
    claim, input_ref, input_meta, cancel_requested = claimed
    mine = _still_mine(job_id, claim)
    if not plan:
        _finish(job_id, mine, "; ".join(problems) or "No enabled provider can run this tool.")
        return
    # Plain values from here on: commits expire ORM objects, and reloading them costs queries.
    plan = [(provider.id, provider.key, provider.name, config) for provider, config in plan]
    for problem in problems:
        add_log(job_id, f"Skipped: {problem}", level="warning")
    add_log(job_id, f"Run {claim}: " + " → ".join(f"{name} [{key}]" for _i, key, name, _c in plan))
    db.session.commit()

    try:
        source = ProviderInput(data=storage.read(input_ref), content_type=input_meta.get("content_type", "image/png"),
                               filename=input_ref.rsplit("/", 1)[-1])
    except storage.StorageError as exc:
        _finish(job_id, mine, f"The uploaded file is missing: {exc}")
        return
    for index, (provider_id, key, name, config) in enumerate(plan):
        if index:
            db.session.execute(sa.update(Job).where(Job.id == job_id).values(provider_id=provider_id, provider_key=key))
            add_log(job_id, f"Handing over to {name} [{key}] after {plan[index - 1][2]} gave up", level="warning",
                    provider_key=key)
            db.session.commit()
        last = index == len(plan) - 1
        if _run_on_provider(job_id, mine, source, (key, name, config), cancel_requested, last):
            return
        cancel_requested = False


def _run_on_provider(job_id, mine, source, provider, cancel_requested, last):
    """Attempts on one provider. True when the job is finished (done, failed or cancelled); False when
    retryable errors used up its retries and a fallback may take over."""
    key, name, config = provider
    plugin = registry.get(key)
    retries = int(config["retries"])
    for attempt in range(1, retries + 2):
        if cancel_requested or (attempt > 1 and _cancel_requested(job_id)):
            _finish(job_id, mine, CANCELLED, status="cancelled")
            return True
        started = time.monotonic()
        try:
            result = outputs.produce(plugin, source, config, should_cancel=lambda: _cancel_requested(job_id))
        except CancelledByUser as exc:
            _record_attempt(job_id, key, attempt, started, exc)
            _finish(job_id, mine, CANCELLED, status="cancelled")
            return True
        except ProviderError as exc:
            _record_attempt(job_id, key, attempt, started, exc)
            if not exc.retryable:
                _finish(job_id, mine, f"{name}: {exc}", customer=getattr(exc, "customer_message", None))
                return True
            if attempt <= retries:
                time.sleep(min(2 ** (attempt - 1), 10) * current_app.config["RETRY_BACKOFF_SECONDS"])
                continue
            if last:
                _finish(job_id, mine, f"{name}: {exc}")
                return True
            return False
        except Exception as exc:  # a bug in a plugin must fail the job, never strand its credits
            log.exception("job %s: provider %s crashed", job_id, key)
            _record_attempt(job_id, key, attempt, started, exc)
            _finish(job_id, mine, f"{name} failed unexpectedly ({exc.__class__.__name__}).")
            return True
        _finish_done(job_id, mine, result, key, attempt, started)
        return True
    return False


def _attempt_values(error, provider_job_id=None):
    """Column updates recording one provider call (folded into the statement that ends the attempt)."""
    provider_job_id = provider_job_id or getattr(error, "provider_job_id", None)
    return {"attempts": Job.attempts + 1, **({"provider_job_id": provider_job_id} if provider_job_id else {})}


def _record_attempt(job_id, provider_key, attempt, started, error):
    latency = int((time.monotonic() - started) * 1000)
    db.session.execute(sa.update(Job).where(Job.id == job_id).values(**_attempt_values(error)))
    retry = " (retryable)" if getattr(error, "retryable", False) else ""
    add_log(job_id, f"Attempt {attempt} failed{retry}: {error}", level="error", provider_key=provider_key,
            attempt=attempt, latency_ms=latency)
    db.session.commit()


def _finish_done(job_id, mine, result, provider_key, attempt, started):
    latency = int((time.monotonic() - started) * 1000)
    content_type = result.content_type  # determined by outputs.verify, so always an image type we know
    output_ref = storage.save(result.output, SUFFIXES[content_type])
    done = db.session.execute(
        sa.update(Job).where(mine).values(
            status="done", output_ref=output_ref, output_content_type=content_type, finished_at=_now(),
            lease_expires_at=None, **_attempt_values(None, result.provider_job_id),
        ).returning(Job.id)
    ).scalar()
    if done:
        add_log(job_id, f"Attempt {attempt} succeeded", provider_key=provider_key, attempt=attempt, latency_ms=latency)
        add_log(job_id, f"Done in {result.latency_ms} ms")
        db.session.commit()
    else:
        # The reaper gave this run up meanwhile: its result must not overwrite the newer state.
        db.session.rollback()
        storage.delete(output_ref)


# --- cancel, retry, reap ---


def cancel(job_id, actor=None):
    """Cancel a queued job at once (refunded) or ask the running provider to stop. Returns a message.

    The caller has checked services.permissions.may_cancel_job. A cancel by staff is audited, and only when
    it actually cancelled something (a finished job is left alone and leaves no row)."""
    who = f" by {actor.email}" if actor is not None else ""

    def audit_cancel(outcome):
        if actor is not None and actor.is_staff:
            audit.record("cancel", "Job", job_id, new={"outcome": outcome}, actor=actor)

    if _finish(job_id, _queued(job_id), f"Cancelled{who}; the credits were refunded.", status="cancelled",
               also=lambda: audit_cancel("cancelled")):
        return "Cancelled and refunded."
    flagged = db.session.execute(
        sa.update(Job).where(Job.id == job_id, Job.status == "processing").values(cancel_requested=True)
        .returning(Job.id)
    ).scalar()
    if flagged:
        add_log(job_id, f"Cancel requested{who}")
        audit_cancel("cancel requested")
        db.session.commit()
        return "Cancel requested; the provider is being stopped."
    db.session.rollback()
    return "This job has already finished."


def _requeue(job_id):
    """Hand a queued job to the workers again; if its function can no longer run, fail and refund it."""
    job = db.session.get(Job, job_id)
    fn = db.session.get(AIFunction, job.function_id) if job.function_id else None
    plan, problems = steps(fn) if fn else ([], ["This tool was removed before the job could run again."])
    if not plan:
        _finish(job_id, _queued(job_id), "; ".join(problems) or "No enabled provider can run this tool.")
        return
    queue.enqueue(job_id, fn.priority, lease_seconds(plan))


def retry(job_id, actor):
    """Queue a failed job again without charging it again. False when the job is not failed."""
    moved = db.session.execute(
        sa.update(Job).where(Job.id == job_id, Job.status == "failed")
        .values(status="queued", error=None, customer_message=None, cancel_requested=False, finished_at=None)
        .returning(Job.id)
    ).scalar()
    if not moved:
        db.session.rollback()
        return False
    add_log(job_id, f"Retried by {actor.email} (not charged again)")
    db.session.commit()
    _requeue(job_id)
    return True


def reap_stale():
    """Jobs whose worker died (lease expired while processing): run again, or fail and refund."""
    stale = db.session.execute(
        sa.select(Job.id, Job.claims).where(Job.status == "processing", Job.lease_expires_at < _now())
    ).all()
    for job_id, claim in stale:
        lost = "The worker running this job stopped responding"
        if claim >= MAX_CLAIMS:
            _finish(job_id, _still_mine(job_id, claim), f"{lost}; the credits were refunded.")
            continue
        requeued = db.session.execute(
            sa.update(Job).where(_still_mine(job_id, claim)).values(status="queued", lease_expires_at=None)
            .returning(Job.id)
        ).scalar()
        if requeued is None:
            db.session.rollback()
            continue
        add_log(job_id, f"{lost}; queued again", level="warning")
        db.session.commit()
        _requeue(job_id)
    return len(stale)
