"""Webhooks to client apps when their jobs end: one delivery row per job end, sent signed by RQ with
exponential backoff over about a day, every attempt logged on the row; staff may redeliver.

Signature (seed 001): X-Webhook-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>, with
X-Webhook-Timestamp (unix seconds) and X-Webhook-Id (the delivery id, the same on every retry).
"""
import hashlib
import hmac
import json
import logging
import time

import sqlalchemy as sa

from app.extensions import db
from app.models import ClientApp, Job, User, WebhookDelivery
from app.models.types import utcnow
from app.services import apps, audit, fetch, outbox, settings
from app.services.urls import absolute_url

log = logging.getLogger("neurapix.app_webhooks")

TIMEOUT_SECONDS = 10
EXCERPT_BYTES = 500
MAX_LOGGED_ATTEMPTS = 50
OUTPUT_PATH = "/api/v1/jobs/{job_id}/output"


class DeliveryFailed(Exception):
    """The receiver did not answer 2xx: RQ retries the delivery after its next interval."""


def _deliver(delivery_id, final):
    deliver(delivery_id, final=final)


OUTBOX = outbox.Outbox("webhook delivery", "app.tasks.deliver_webhook", _deliver, DeliveryFailed,
                       "WEBHOOK_RETRY_SECONDS", job_timeout=TIMEOUT_SECONDS * 3, threads=2)


def allow_hosts():
    return [h.strip() for h in (settings.get("api.allow_hosts") or "").split(",") if h.strip()]


def sign(secret, timestamp, body):
    """The X-Webhook-Signature value of a body sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _iso(moment):
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def outputs(job):
    if job.status != "done" or not job.output_ref:
        return []
    try:
        url = absolute_url("api.job_output", job_id=job.id)
    except RuntimeError:  # a worker with no public URL set: no host to name, so the path alone
        url = OUTPUT_PATH.format(job_id=job.id)
    return [{"url": url, "index": 0}]


def payload(job, user):
    status = apps.api_status(job.status)
    body = {"event": apps.WEBHOOK_EVENTS[status], "job_id": job.id, "status": status,
            "user_id": user.external_id if user else None, "function": job.function_key,
            "outputs": outputs(job), "tokens_charged": 0 if job.refunded else job.credits_charged,
            "completed_at": _iso(job.finished_at)}
    if status == "failed":
        body["error"] = job.customer_message
    return body


def job_ended(job_id):
    """Called where a job's end is written, in that transaction: a delivery row for an API job whose app (or
    request) has a webhook URL. It is enqueued once the transaction commits."""
    row = db.session.execute(
        sa.select(Job.app_id, Job.webhook_url, ClientApp.webhook_url)
        .join(ClientApp, ClientApp.id == Job.app_id).where(Job.id == job_id)
    ).first()
    if row is None or not (row[1] or row[2]):
        return None
    job = db.session.get(Job, job_id)
    db.session.refresh(job)  # the terminal state was written by an UPDATE statement just now
    user = db.session.get(User, job.user_id)
    body = payload(job, user)
    delivery = WebhookDelivery(app_id=row[0], job_id=job_id, event=body["event"], url=row[1] or row[2],
                               payload=body, status="pending", attempts=[])
    db.session.add(delivery)
    db.session.flush()
    OUTBOX.add(delivery.id)
    return delivery


def deliver(delivery_id, final=None):
    """Send one delivery once and log the attempt on its row; DeliveryFailed (to be retried) unless 2xx.
    `final` says no retry follows (RQ: read from the current job's retries left)."""
    delivery = db.session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.status == "delivered":
        return
    app = db.session.get(ClientApp, delivery.app_id)
    secret = apps.webhook_secret(app)
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": "Neurapix-Webhooks/1",
               "X-Webhook-Id": str(delivery.id), "X-Webhook-Timestamp": timestamp}
    if secret:
        headers["X-Webhook-Signature"] = sign(secret, timestamp, body)
    started = time.monotonic()
    status_code, excerpt, error = None, "", None
    try:
        status_code, answer = fetch.post(delivery.url, body, headers=headers, allow_hosts=allow_hosts(),
                                         max_bytes=EXCERPT_BYTES, timeout=TIMEOUT_SECONDS)
        excerpt = answer.decode("utf-8", "replace")
        if not 200 <= status_code < 300:
            error = f"The receiver answered {status_code}."
    except fetch.FetchError as exc:
        error = str(exc)
    latency = int((time.monotonic() - started) * 1000)
    if final is None:
        final = _last_try()
    delivery.attempt_count += 1
    delivery.last_status_code, delivery.last_latency_ms = status_code, latency
    delivery.last_error = error[:500] if error else None
    delivery.attempts = [*(delivery.attempts or []), {
        "at": utcnow().isoformat(), "status_code": status_code, "latency_ms": latency,
        "excerpt": excerpt[:EXCERPT_BYTES], "error": error}][-MAX_LOGGED_ATTEMPTS:]
    if error is None:
        delivery.status, delivery.delivered_at = "delivered", utcnow()
    else:
        delivery.status = "failed" if final else "retrying"
    db.session.commit()
    if error is not None:
        raise DeliveryFailed(f"delivery {delivery_id}: {error}")


def _last_try():
    from rq import get_current_job

    job = get_current_job()
    return job is None or not job.retries_left


def redeliver(delivery_id, actor):
    """Staff send a delivery again (a fresh round of retries); audited."""
    delivery = db.session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        db.session.rollback()
        return False
    delivery.status = "pending"
    OUTBOX.add(delivery.id)
    audit.record("redeliver", "WebhookDelivery", delivery.id, actor=actor)
    db.session.commit()
    return True
