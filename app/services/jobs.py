"""The job lifecycle: submit (validate, debit, queue), run one step on a provider, check a remote job (webhook
or scheduled poll), finish once, cancel, retry, and resume jobs whose worker vanished.

A job is a state machine in the database: queued → processing (answered within the worker) or submitting →
waiting (provider job id stored) → fetching, then done | failed | cancelled. Every transition is one conditional
UPDATE guarded by the job's claim number, so a webhook and a poll racing, a task delivered twice or a run the
reaper gave up on move a job at most once: one output stored, one refund at most.
"""
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models import AIFunction, FunctionFallback, Job, JobLog, User
from app.providers import registry
from app.providers.base import ProviderError, ProviderInput, request_timeout, timed_out
from app.services import (app_webhooks, audit, catalog, credits, mail, outputs, parameters, permissions,
                          provider_setup, queue, settings, storage)
from app.services.uploads import SUFFIXES, SubmitError, check_daily_limits, inspect_upload, plan_limits

log = logging.getLogger(__name__)

ACTIVE = ("queued", "processing", "submitting", "waiting", "fetching")
# States in which a worker task holds the job; if its lease runs out, that worker is presumed dead.
HELD = ("processing", "submitting", "fetching")
CANCELLED = "Cancelled; the credits were refunded."
# What customers read about a job that ended without a result (Job.customer_message); the details that
# name providers, URLs and their answers stay in Job.error and the job log, which only staff see.
CUSTOMER_FAILED = "We could not process this image."
CUSTOMER_CANCELLED = "This job was cancelled."
# A job whose worker vanished mid-step is resumed at most this many times, then failed and refunded.
MAX_RESCUES = 1
# Status checks come every poll_interval for the first POLL_STEADY checks (most jobs end within them), then back
# off by POLL_BACKOFF per check, up to MAX_POLL_DELAY_SECONDS apart. A waiting job's lease covers the longest gap,
# so the reaper resumes a chain of checks that was lost (Redis restarted, worker killed).
POLL_STEADY = 5
POLL_BACKOFF = 1.5
WEBHOOK_PATH = "/webhooks/jobs/{job_id}/{token}"


def _now():
    return datetime.now(timezone.utc)


def _aware(moment):
    # SQLite (development) hands timestamps back without their zone; they were written in UTC.
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _grace():
    return current_app.config["JOB_LEASE_GRACE_SECONDS"]


def _max_poll_delay():
    return current_app.config["MAX_POLL_DELAY_SECONDS"]


def add_log(job_id, message, level="info", **fields):
    # Added to the session, so a step's log lines are written in one batch with its commit.
    db.session.add(JobLog(job_id=job_id, message=message, level=level, **fields))


def _mine(job_id, claim, *statuses):
    """The job is still in one of `statuses` under this claim: the guard of every transition."""
    return sa.and_(Job.id == job_id, Job.claims == claim, Job.status.in_(statuses))


def _queued(job_id):
    return sa.and_(Job.id == job_id, Job.status == "queued")


# --- submit ---


def _store_images(fn, values, max_file_size):
    """Second images among the checked values: verified like the main upload, stored, and replaced by their
    storage refs. Returns the refs saved (the caller deletes them if the submit fails)."""
    saved = []
    try:
        for key, value in list(values.items()):
            if isinstance(value, bytes):
                try:
                    meta = inspect_upload(fn, value, max_file_size)
                except SubmitError as exc:
                    raise parameters.ParameterError({key: str(exc)}, fn.parameters) from None
                ref = storage.save(value, SUFFIXES[meta["content_type"]])
                saved.append(ref)
                values[key] = {"file": ref, "content_type": meta["content_type"]}
    except BaseException:
        for ref in saved:
            storage.delete(ref)
        raise
    return saved


def submit(user, function_key, data, filename="upload", fn=None, params=None, files=None, *, fields=None,
           priority_boost=0, before_commit=None):
    """Validate, debit and queue one job; SubmitError (nothing debited, nothing queued) otherwise. `fn` is the
    function when the caller has just read it with catalog.visible_function (no second lookup). `params` are
    the customer's parameter values and `files` the bytes of second images, by key: both are checked against
    the function's parameters here, whoever calls (parameters.ParameterError names each bad one). The REST API
    adds Job `fields` (app_id, webhook_url), a queue priority boost, and `before_commit(job, balance)` which joins
    the transaction (its idempotency row, its jobs-in-flight check) and may raise SubmitError."""
    fn = fn if fn is not None and fn.key == function_key else catalog.visible_function(function_key)
    if fn is None:
        raise SubmitError("This tool is not available.", status=404)
    if user.is_banned:
        raise SubmitError("Your account is suspended.", status=403)
    if refusal := permissions.job_refusal(user):
        raise SubmitError(refusal, status=403)
    limits = plan_limits(user)
    meta = inspect_upload(fn, data, limits.get("max_file_size"))
    values = parameters.clean(fn.parameters or [], params, files)
    cost = parameters.price(fn.price_per_use, fn.parameters, values)
    links, problems = provider_setup.chain(fn)
    if not links:
        log.error("function %s has no usable provider: %s", fn.key, "; ".join(problems))
        raise SubmitError("This tool is temporarily unavailable. Please try again later.", status=503)
    first, config = links[0]
    plugin = registry.get(first.key)

    extra_refs = _store_images(fn, values, limits.get("max_file_size"))
    input_ref = storage.save(data, SUFFIXES[meta["content_type"]])
    try:
        if fn.daily_limit or limits.get("jobs_per_day") or limits.get("jobs_per_day_per_function"):
            # Serialise this user's submits so daily limits cannot be overrun by parallel requests.
            db.session.execute(sa.select(User.id).where(User.id == user.id).with_for_update())
            check_daily_limits(user, fn, limits)
        job = Job(user_id=user.id, function_id=fn.id, function_key=fn.key, provider_id=first.id,
                  provider_key=first.key, status="queued", input_ref=input_ref, input_meta=meta,
                  credits_charged=cost, params=values, **(fields or {}))
        db.session.add(job)
        db.session.flush()
        balance = user.balance
        if cost:
            balance = credits.debit(user.id, cost, reason=f"{fn.name} (job #{job.id})", job_id=job.id)
        add_log(job.id, f"Submitted {meta['format']} {meta['width']}×{meta['height']}, charged {cost} credits")
        if before_commit is not None:
            before_commit(job, balance)
        priority = fn.priority + int(limits.get("queue_priority", 0)) + priority_boost
        timeout, cpu = provider_setup.attempt_seconds(plugin, config), plugin.runs_here
        # Handed back as it is now: a commit would expire it, and reading it again costs a five-table join.
        db.session.expunge(job)
        db.session.commit()
    except credits.InsufficientCredits as exc:
        db.session.rollback()
        for ref in [input_ref, *extra_refs]:
            storage.delete(ref)
        short = SubmitError(str(exc), status=402)
        short.price = cost
        raise short from None
    except BaseException:
        db.session.rollback()
        for ref in [input_ref, *extra_refs]:
            storage.delete(ref)
        raise

    try:
        queue.enqueue(job.id, priority, timeout, cpu=cpu)
    except Exception:
        log.exception("job %s could not be queued", job.id)
        _finish(job.id, _queued(job.id), "The job queue is unavailable; your credits were refunded.",
                customer="We could not start this job.")
        raise SubmitError("We could not start this job right now; your credits were refunded. Please try again.",
                          status=503) from None
    return job


# --- one step on a provider (in a worker) ---


@dataclass
class _Step:
    """One claimed step of a job, in plain values (commits expire ORM objects, and reloading them costs
    queries)."""

    job_id: int
    claim: int
    index: int  # position in the function's provider chain
    attempt: int  # attempts on this step, this one included
    provider_id: int
    key: str
    name: str
    config: dict
    links: list  # the chain as [(provider id, key, name, config)]
    priority: int

    @property
    def plugin(self):
        return registry.get(self.key)


def _load_chain(job_id):
    """(function, the job's chain step) read fresh: an admin's last edit decides every step."""
    found = db.session.execute(
        sa.select(AIFunction, Job.step).join(Job, Job.function_id == AIFunction.id).where(Job.id == job_id)
        .options(joinedload(AIFunction.fallbacks).joinedload(FunctionFallback.provider))  # one query in all
    ).unique().first()
    if found is None:  # the function was deleted: the job fails at whatever step it is
        return [], ["This tool was removed before the job ran."], None, 0
    fn, index = found
    links, problems = provider_setup.chain(fn)
    return [(p.id, p.key, p.name, c) for p, c in links], problems, index, fn.priority


def _step(job_id, claim, links, index, attempt, priority):
    provider_id, key, name, config = links[index]
    return _Step(job_id, claim, index, attempt, provider_id, key, name, config, links, priority)


def _claim(job_id, index, status, values):
    """queued → `status`, atomically, as a new claim; None when the job is gone, cancelled or taken."""
    at_step = Job.step == index if index is not None else sa.true()
    return db.session.execute(
        sa.update(Job).where(_queued(job_id), at_step)
        .values(status=status, started_at=sa.func.coalesce(Job.started_at, _now()), claims=Job.claims + 1,
                attempts=Job.attempts + 1, step_attempts=Job.step_attempts + 1, error=None, **values)
        .returning(Job.claims, Job.step_attempts, Job.input_ref, Job.input_meta, Job.cancel_requested, Job.params)
    ).first()


def run(job_id):
    """Run the job's current chain step with the function and provider rows as they are now: answer it in
    this worker, or submit it to the remote provider and return (a webhook or a scheduled check goes on)."""
    links, problems, index, priority = _load_chain(job_id)
    if index is None or index >= len(links):
        claimed = _claim(job_id, index, "processing", {})
        if claimed is None:
            db.session.commit()
            return
        _finish(job_id, _mine(job_id, claimed.claims, "processing"),
                "; ".join(problems) or "No enabled provider can run this tool.")
        return
    provider_id, key, name, config = links[index]
    plugin = registry.get(key)
    status = "submitting" if plugin.is_remote(config) else "processing"
    claimed = _claim(job_id, index, status, {
        "provider_id": provider_id, "provider_key": key,
        "lease_expires_at": _now() + timedelta(seconds=provider_setup.attempt_seconds(plugin, config))})
    if claimed is None:
        db.session.commit()
        return
    step = _step(job_id, claimed.claims, links, index, claimed.step_attempts, priority)
    mine = _mine(job_id, step.claim, status)
    if index == 0 and step.attempt == 1 and (problems or len(links) > 1):
        for problem in problems:
            add_log(job_id, f"Skipped: {problem}", level="warning")
        add_log(job_id, "Providers: " + " → ".join(f"{n} [{k}]" for _i, k, n, _c in links))
    if claimed.cancel_requested:
        _finish(job_id, mine, CANCELLED, status="cancelled")
        return
    try:
        source = ProviderInput(data=storage.read(claimed.input_ref),
                               content_type=claimed.input_meta.get("content_type", "image/png"),
                               filename=claimed.input_ref.rsplit("/", 1)[-1])
        # The customer's values win over the configured params (step.config is this run's own copy).
        step.config["params"] = {**(step.config.get("params") or {}),
                                 **parameters.provider_params(claimed.params, step.config)}
    except storage.StorageError as exc:
        _finish(job_id, mine, f"The uploaded file is missing: {exc}")
        return
    if status == "submitting":
        _submit_remote(step, plugin, source)
        return
    db.session.commit()  # the claim is visible (and its lease runs) while the provider works
    started = time.monotonic()
    try:
        result = outputs.produce(plugin, source, config)
    except Exception as exc:  # a bug in a plugin must fail the job, never strand its credits
        _attempt_failed(step, "processing", exc, started)
        return
    _done(step, "processing", result, started)


def _webhook_url(step, plugin):
    """(URL, token) the provider reports to when this site has a public URL, else (None, None). A provider
    that signs its webhooks needs its signing key first: fetched once from its API and stored encrypted."""
    base = settings.get("site.public_url")
    if not base:
        return None, None
    field = plugin.webhook_secret_field
    if field and not step.config.get(field):
        try:
            step.config[field] = plugin.fetch_webhook_secret(step.config)
        except ProviderError as exc:
            add_log(step.job_id, f"No webhook for this attempt (checked by polling): {exc}", level="warning",
                    provider_key=step.key)
            return None, None
        provider_setup.store_secret(step.provider_id, field, step.config[field])
    token = secrets.token_urlsafe(32)
    return base + WEBHOOK_PATH.format(job_id=step.job_id, token=token), token


def _submit_remote(step, plugin, source):
    """submitting → waiting: one request to start the remote job, its state stored, the first check scheduled."""
    webhook_url, token = _webhook_url(step, plugin)
    db.session.commit()  # the claim (and a fetched signing key) are saved before the provider is called
    started = time.monotonic()
    try:
        state = plugin.submit(source, step.config, webhook_url)
    except Exception as exc:
        _attempt_failed(step, "submitting", exc, started)
        return
    remote_id = str(state.get("id") or "")[:128] or None
    waiting = db.session.execute(
        sa.update(Job).where(_mine(step.job_id, step.claim, "submitting")).values(
            status="waiting", provider_job_id=remote_id, remote_state=state, webhook_token=token,
            deadline_at=_now() + timedelta(seconds=float(step.config["timeout"])),
            lease_expires_at=_now() + timedelta(seconds=_max_poll_delay() + _grace()),
        ).returning(Job.cancel_requested)
    ).first()
    if waiting is None:
        # The reaper gave this run up meanwhile: nobody would watch this remote job, so stop it.
        db.session.rollback()
        _cancel_at_provider(plugin, state, step)
        return
    how = "reports by webhook" if token else "checked by polling"
    add_log(step.job_id, f"Attempt {step.attempt}: submitted to {step.name} as {remote_id} ({how})",
            provider_key=step.key, latency_ms=int((time.monotonic() - started) * 1000))
    db.session.commit()
    delay = 0 if waiting.cancel_requested else _poll_delay(step.config, 0, bool(token))
    _schedule_check(step.job_id, step.claim, delay, 0)


def _poll_delay(config, polls, webhook):
    """Seconds until the next status check: the poll interval, backing off; rarer when a webhook will report."""
    if webhook:
        return min(float(config.get("webhook_poll_interval", 30)), _max_poll_delay())
    backoff = POLL_BACKOFF ** max(0, polls + 1 - POLL_STEADY)
    return min(float(config.get("poll_interval", 1.0)) * backoff, _max_poll_delay())


def _schedule_check(job_id, claim, delay, polls):
    try:
        queue.enqueue_check(job_id, claim, delay, polls)
    except Exception:
        # The job keeps its lease: when it runs out, the reaper schedules the check again.
        log.exception("job %s: the status check could not be scheduled", job_id)


def _cancel_at_provider(plugin, state, step):
    try:
        plugin.cancel_remote(state, step.config)
    except ProviderError as exc:
        log.warning("job %s: cancelling remote job %s failed: %s", step.job_id, state.get("id"), exc)
    except Exception:  # best effort, like a failed request: the job ends either way
        log.exception("job %s: cancelling remote job %s crashed", step.job_id, state.get("id"))


# --- a job waiting at its provider: one check per task (webhook or scheduled poll) ---


def check(job_id, claim, polls=0):
    """Ask the provider once about a waiting job; then take its result, fail the attempt (retry, hand over or
    fail), cancel it, or schedule the next check. Any number of checks may race: one takes the result."""
    # One statement reads what the check needs (the cancel flag included) and renews the lease.
    row = db.session.execute(
        sa.update(Job).where(_mine(job_id, claim, "waiting"))
        .values(lease_expires_at=_now() + timedelta(seconds=_max_poll_delay() + _grace()))
        .returning(Job.step_attempts, Job.remote_state, Job.deadline_at, Job.cancel_requested, Job.webhook_token)
    ).first()
    db.session.commit()
    if row is None:
        return
    links, _problems, index, priority = _load_chain(job_id)
    waiting = _mine(job_id, claim, "waiting")
    if index is None or index >= len(links):
        _finish(job_id, waiting, "The provider of this job was removed or disabled while it worked on it.")
        return
    step = _step(job_id, claim, links, index, row.step_attempts, priority)
    plugin, state = step.plugin, row.remote_state
    if row.cancel_requested:
        _cancel_at_provider(plugin, state, step)
        _finish(job_id, waiting, CANCELLED, status="cancelled")
        return
    started = time.monotonic()
    overdue = _now() >= _aware(row.deadline_at)
    try:
        state = plugin.check(state, step.config)
        result = plugin.outcome(state, step.config)
    except ProviderError as exc:
        if exc.retryable and not overdue:  # the status request failed, not the job: ask again later
            log.warning("job %s: status check failed: %s", job_id, exc)
            _schedule_check(job_id, claim, _poll_delay(step.config, polls, False), polls + 1)
            return
        exc.provider_job_id = exc.provider_job_id or state.get("id")
        if exc.retryable:
            _cancel_at_provider(plugin, state, step)
            exc = _timeout_error(state)
        _attempt_failed(step, "waiting", exc, started)
        return
    except Exception as exc:
        _attempt_failed(step, "waiting", exc, started)
        return
    if result is None:
        if overdue:
            _cancel_at_provider(plugin, state, step)
            _attempt_failed(step, "waiting", _timeout_error(state), started)
            return
        seconds_left = (_aware(row.deadline_at) - _now()).total_seconds()
        delay = min(_poll_delay(step.config, polls, bool(row.webhook_token)), max(seconds_left, 0))
        _schedule_check(job_id, claim, delay, polls + 1)
        return
    fetching = db.session.execute(
        sa.update(Job).where(waiting).values(
            status="fetching", remote_state=state,
            # The download: one guarded fetch within the request timeout (connect and read, so twice it).
            lease_expires_at=_now() + timedelta(seconds=2 * request_timeout(step.config) + _grace()))
        .returning(Job.id)
    ).scalar()
    db.session.commit()
    if fetching is None:
        return  # another check (a webhook's, a poll's) took the result
    try:
        result = outputs.complete(result, step.config)
    except Exception as exc:
        _attempt_failed(step, "fetching", exc, started)
        return
    _done(step, "fetching", result, started)


def _timeout_error(state):
    error = timed_out()
    error.provider_job_id = state.get("id")
    return error


def _resume_fetch(job_id, claim):
    """A job whose worker died while downloading its output: back to waiting, so a check fetches it again."""
    return db.session.execute(
        sa.update(Job).where(_mine(job_id, claim, "fetching"))
        .values(status="waiting", rescues=Job.rescues + 1,
                lease_expires_at=_now() + timedelta(seconds=_max_poll_delay() + _grace()))
        .returning(Job.id)
    ).scalar()


# --- the end of an attempt ---


def _attempt_failed(step, status, error, started):
    """Log a failed attempt, then retry the step (after a backoff), hand over to the next provider of the
    chain, or fail the job and refund it: whichever its config and the error allow."""
    mine = _mine(step.job_id, step.claim, status)
    expected = isinstance(error, ProviderError)
    if not expected:
        log.exception("job %s: provider %s crashed", step.job_id, step.key, exc_info=error)
    retryable = expected and error.retryable
    remote_id = getattr(error, "provider_job_id", None)
    values = {"provider_job_id": str(remote_id)[:128]} if remote_id else {}
    add_log(step.job_id, f"Attempt {step.attempt} failed{' (retryable)' if retryable else ''}: {error}",
            level="error", provider_key=step.key, attempt=step.attempt,
            latency_ms=int((time.monotonic() - started) * 1000))
    if not expected:
        _finish(step.job_id, mine, f"{step.name} failed unexpectedly ({error.__class__.__name__}).", **values)
    elif not retryable:
        _finish(step.job_id, mine, f"{step.name}: {error}", customer=getattr(error, "customer_message", None),
                **values)
    elif step.attempt <= int(step.config["retries"]):
        backoff = min(2 ** (step.attempt - 1), 10) * current_app.config["RETRY_BACKOFF_SECONDS"]
        _queue_step(step, mine, step.index, backoff, values)
    elif step.index + 1 < len(step.links):
        _provider_id, key, name, _config = step.links[step.index + 1]
        add_log(step.job_id, f"Handing over to {name} [{key}] after {step.name} gave up", level="warning",
                provider_key=key)
        _queue_step(step, mine, step.index + 1, 0, {**values, "step_attempts": 0})
    else:
        _finish(step.job_id, mine, f"{step.name}: {error}", **values)


def _queue_step(step, mine, index, delay, values):
    """Back to queued for step `index` of the chain, run again after `delay` seconds."""
    _provider_id, key, _name, config = step.links[index]
    plugin = registry.get(key)
    moved = db.session.execute(
        sa.update(Job).where(mine).values(
            status="queued", step=index, remote_state=None, webhook_token=None, deadline_at=None,
            # A queued job with a lease is one the reaper queues again if the delayed task never comes.
            lease_expires_at=_now() + timedelta(seconds=delay + _grace()), **values)
        .returning(Job.id)
    ).scalar()
    if moved is None:
        db.session.rollback()
        return
    db.session.commit()
    try:
        queue.enqueue(step.job_id, step.priority, provider_setup.attempt_seconds(plugin, config),
                      cpu=plugin.runs_here, delay=delay)
    except Exception:
        log.exception("job %s could not be queued again; the reaper will", step.job_id)


def _done(step, status, result, started):
    content_type = result.content_type  # determined by outputs.verify, so always an image type we know
    output_ref = storage.save(result.output, SUFFIXES[content_type])
    remote_id = {"provider_job_id": str(result.provider_job_id)[:128]} if result.provider_job_id else {}
    done = db.session.execute(
        sa.update(Job).where(_mine(step.job_id, step.claim, status)).values(
            status="done", output_ref=output_ref, output_content_type=content_type, finished_at=_now(),
            lease_expires_at=None, remote_state=None, **remote_id,
        ).returning(Job.started_at)
    ).first()
    if done is None:
        # Another run or check finished this job meanwhile: its result must not overwrite that state.
        db.session.rollback()
        storage.delete(output_ref)
        return
    # One row: the attempt's outcome and the job's, written with the finish in one commit.
    add_log(step.job_id, f"Done in {int((_now() - _aware(done.started_at)).total_seconds() * 1000)} ms: attempt "
                         f"{step.attempt} on {step.name} succeeded", provider_key=step.key, attempt=step.attempt,
            latency_ms=int((time.monotonic() - started) * 1000))
    app_webhooks.job_ended(step.job_id)
    db.session.commit()


def _refund(job_id):
    """Give the job's credits back once, whatever path gets here first."""
    job = db.session.get(Job, job_id)
    if job.credits_charged and not job.refunded:
        granted = credits.grant(job.user_id, job.credits_charged, kind="refund", job_id=job.id,
                                reason=f"Refund for job #{job.id}", idempotency_key=f"refund:job:{job.id}")
        if granted is not None:
            add_log(job.id, f"Refunded {job.credits_charged} credits")
    job.refunded = True


def _finish(job_id, condition, message, status="failed", customer=None, also=None, **values):
    """Move a job to failed/cancelled if `condition` still holds, and refund it once. True if it moved.

    `message` is for staff; `customer` is what the customer reads (a plain default when None). `also` runs
    only when the job moved, in the same transaction (the audit row of a staff cancel)."""
    customer = customer or (CUSTOMER_CANCELLED if status == "cancelled" else CUSTOMER_FAILED)
    moved = db.session.execute(
        sa.update(Job).where(condition).values(status=status, error=message, customer_message=customer,
                                               finished_at=_now(), lease_expires_at=None, remote_state=None,
                                               **values).returning(Job.id)
    ).scalar()
    if moved:
        add_log(job_id, message, level="error" if status == "failed" else "info")
        _refund(job_id)
        if status == "failed":
            mail.job_failed(job_id)
        app_webhooks.job_ended(job_id)
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


# --- provider webhooks ---


class UnknownWebhook(LookupError):
    """No waiting job has this id and token."""


def accept_webhook(job_id, token, headers, body):
    """A provider says a job changed: believe it only with the job's token (and the provider's signature, when
    it signs), then check the job at once. Returns "accepted" or "ignored" (the job no longer waits)."""
    row = db.session.execute(
        sa.select(Job.claims, Job.status, Job.webhook_token).where(Job.id == job_id)).first()
    db.session.commit()
    if row is None or not row.webhook_token or not hmac.compare_digest(row.webhook_token.encode(), token.encode()):
        raise UnknownWebhook(f"no job {job_id} with this token")
    links, _problems, index, _priority = _load_chain(job_id)
    db.session.commit()
    if index is None or index >= len(links):
        return "ignored"
    _provider_id, key, _name, config = links[index]
    registry.get(key).verify_webhook(headers, body, config)  # raises WebhookRefused
    if row.status != "waiting":
        return "ignored"  # a duplicate, or a poll got there first
    _schedule_check(job_id, row.claims, 0, 0)
    return "accepted"


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
        sa.update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE)).values(cancel_requested=True)
        .returning(Job.status, Job.claims)
    ).first()
    if flagged:
        add_log(job_id, f"Cancel requested{who}")
        audit_cancel("cancel requested")
        db.session.commit()
        if flagged.status == "waiting":
            _schedule_check(job_id, flagged.claims, 0, 0)  # the check cancels it at the provider now
        return "Cancel requested; the provider is being stopped."
    db.session.rollback()
    return "This job has already finished."


def _requeue(job_id):
    """Hand a queued job to the workers again; if its function can no longer run, fail and refund it."""
    links, problems, index, priority = _load_chain(job_id)
    if index is None or index >= len(links):
        _finish(job_id, _queued(job_id), "; ".join(problems) or "No enabled provider can run this tool.")
        return
    _provider_id, key, _name, config = links[index]
    plugin = registry.get(key)
    queue.enqueue(job_id, priority, provider_setup.attempt_seconds(plugin, config), cpu=plugin.runs_here)


def retry(job_id, actor):
    """Queue a failed job again from the first provider, without charging it again. False when not failed."""
    moved = db.session.execute(
        sa.update(Job).where(Job.id == job_id, Job.status == "failed")
        .values(status="queued", error=None, customer_message=None, cancel_requested=False, finished_at=None,
                step=0, step_attempts=0, rescues=0)
        .returning(Job.id)
    ).scalar()
    if not moved:
        db.session.rollback()
        return False
    add_log(job_id, f"Retried by {actor.email} (not charged again)")
    audit.record("retry", "Job", job_id, actor=actor)
    db.session.commit()
    _requeue(job_id)
    return True


def reap_stale():
    """Jobs whose lease ran out, in any state: a lost run is run again once (then failed and refunded), a
    waiting job is checked again (never submitted again), a lost delayed retry is queued again."""
    stale = db.session.execute(
        sa.select(Job.id, Job.claims, Job.status, Job.rescues)
        .where(Job.status.in_(ACTIVE), Job.lease_expires_at < _now())
    ).all()
    db.session.commit()
    lost = "The worker running this job stopped responding"
    for job_id, claim, status, rescues in stale:
        if status == "queued":
            _reap_queued(job_id)
        elif status == "waiting":
            _reap_waiting(job_id, claim)
        elif rescues >= MAX_RESCUES:
            _finish(job_id, _mine(job_id, claim, status), f"{lost}; the credits were refunded.")
        elif status == "fetching":
            if _resume_fetch(job_id, claim):
                add_log(job_id, f"{lost} while fetching the output; checking the provider again", level="warning")
                db.session.commit()
                _schedule_check(job_id, claim, 0, 0)
            else:
                db.session.rollback()
        else:
            _reap_running(job_id, claim, status, lost)
    return len(stale)


def _reap_queued(job_id):
    renewed = db.session.execute(
        sa.update(Job).where(_queued(job_id), Job.lease_expires_at < _now())
        .values(lease_expires_at=_now() + timedelta(seconds=_grace())).returning(Job.id)
    ).scalar()
    db.session.commit()
    if renewed:
        _requeue(job_id)


def _reap_waiting(job_id, claim):
    renewed = db.session.execute(
        sa.update(Job).where(_mine(job_id, claim, "waiting"), Job.lease_expires_at < _now())
        .values(lease_expires_at=_now() + timedelta(seconds=_max_poll_delay() + _grace())).returning(Job.id)
    ).scalar()
    if renewed:
        add_log(job_id, "No status check came in time; checking the provider again", level="warning")
    db.session.commit()
    if renewed:
        _schedule_check(job_id, claim, 0, 0)


def _reap_running(job_id, claim, status, lost):
    # The lost run's attempt does not count against the step's retries.
    requeued = db.session.execute(
        sa.update(Job).where(_mine(job_id, claim, status))
        .values(status="queued", rescues=Job.rescues + 1, step_attempts=Job.step_attempts - 1,
                lease_expires_at=_now() + timedelta(seconds=_grace()))
        .returning(Job.id)
    ).scalar()
    if requeued is None:
        db.session.rollback()
        return
    add_log(job_id, f"{lost}; queued again", level="warning")
    db.session.commit()
    _requeue(job_id)
