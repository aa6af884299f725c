"""Alerts: conditions the owner wants to hear about, tracked as incidents (open → resolved) so each one is
posted to the webhook once when it starts and once when it ends, however many jobs it spans.

`check()` runs on the scheduler's tick. A condition is one of: a provider's failure rate over the threshold,
a provider whose last health check failed, a job waiting in the queue too long, a staff credit adjustment of
at least the threshold (an event: opened and closed at once), the latest backup failed.
"""
import json
import logging
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Alert, CreditLedger, Job, Provider
from app.services import backup, fetch, settings

log = logging.getLogger(__name__)
WEBHOOK_TIMEOUT = 10
EVENT_LOOKBACK = timedelta(days=1)  # credit adjustments older than this are not alerted on any more


def _now():
    return datetime.now(timezone.utc)


def _aware(moment):
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def conditions(now=None):
    """What is wrong now: {(kind, subject): message}."""
    now = now or _now()
    found = {}
    since = now - timedelta(minutes=settings.get("alerts.window_minutes"))
    threshold, minimum = settings.get("alerts.provider_failure_rate"), settings.get("alerts.provider_min_jobs")
    # Jobs created within the window (an indexed range), finished either way.
    for key, finished, failed in db.session.execute(
            sa.select(Job.provider_key, sa.func.count(), sa.func.sum(sa.case((Job.status == "failed", 1), else_=0)))
            .where(Job.created_at >= since, Job.status.in_(("done", "failed")), Job.provider_key.is_not(None))
            .group_by(Job.provider_key)):
        rate = 100 * (failed or 0) / finished
        if finished >= minimum and rate > threshold:
            found[("provider_failure_rate", key)] = (
                f"Provider {key}: {failed} of the last {finished} jobs failed ({rate:.0f}%, threshold {threshold}%).")
    for provider in db.session.scalars(sa.select(Provider).where(Provider.enabled.is_(True),
                                                                 Provider.last_status == "error")):
        found[("provider_health", provider.key)] = (
            f"Provider {provider.name} failed its last check: {(provider.last_error or 'no detail')[:200]}")
    wait = settings.get("alerts.queue_wait_minutes")
    oldest = _aware(db.session.scalar(sa.select(sa.func.min(Job.created_at)).where(Job.status == "queued")))
    if oldest is not None and now - oldest > timedelta(minutes=wait):
        found[("queue_wait", "jobs")] = (f"A job has waited {int((now - oldest).total_seconds() // 60)} minutes "
                                         f"in the queue (threshold {wait} minutes): are the workers running?")
    last = backup.last_failure()
    if last is not None:
        found[("backup_failed", "backup")] = f"The last backup ({last.name}) failed: {(last.error or '')[:200]}"
    return found


def _events(now):
    """Large staff credit adjustments not alerted yet: [(subject, message)]."""
    limit = settings.get("alerts.credit_adjustment")
    rows = db.session.scalars(sa.select(CreditLedger).where(
        CreditLedger.created_at >= now - EVENT_LOOKBACK, CreditLedger.kind == "adjust",
        sa.func.abs(CreditLedger.amount) >= limit).order_by(CreditLedger.id))
    return [(f"ledger:{row.id}", f"{row.actor.email if row.actor else 'Staff'} adjusted customer #{row.user_id}'s "
             f"credits by {row.amount:+,} (threshold {limit:,}): {row.reason}"[:500]) for row in rows]


def _open(kind, subject, message, open_key, resolved_at=None):
    """Insert the incident unless one is open under the same key (another checker got there): True if ours."""
    try:
        with db.session.begin_nested():
            db.session.add(Alert(kind=kind, subject=subject, message=message, open_key=open_key,
                                 opened_at=_now(), resolved_at=resolved_at))
    except IntegrityError:
        return False
    return True


def check():
    """Open incidents for new conditions, resolve those that ended, post each change to the webhook; commits.

    Returns the alerts opened and resolved by this run."""
    now = _now()
    current = conditions(now)
    opened, resolved = [], []
    open_rows = {(a.kind, a.subject): a for a in db.session.scalars(
        sa.select(Alert).where(Alert.resolved_at.is_(None)).with_for_update())}
    for (kind, subject), message in current.items():
        if (kind, subject) not in open_rows and _open(kind, subject, message, f"{kind}:{subject}"):
            opened.append((kind, subject))
    for (kind, subject), alert in open_rows.items():
        if (kind, subject) not in current:
            alert.resolved_at = now
            alert.open_key = None
            resolved.append(alert)
    for subject, message in _events(now):
        # An event keeps its key for good: the same ledger row is never alerted twice.
        if _open("credit_adjustment", subject, message, f"credit_adjustment:{subject}", resolved_at=now):
            opened.append(("credit_adjustment", subject))
    db.session.commit()
    new = [db.session.scalars(sa.select(Alert).where(Alert.kind == k, Alert.subject == s)
                              .order_by(Alert.id.desc()).limit(1)).one() for k, s in opened]
    for alert in new:
        _notify(alert, "opened")
    for alert in resolved:
        _notify(alert, "resolved")
    db.session.commit()
    return new, resolved


def payload(alert, change):
    """Slack-compatible JSON: `text` is what Slack (and Mattermost, Rocket.Chat, Teams' Slack mode) shows."""
    if change == "opened":
        text = f":rotating_light: Neurapix alert: {alert.message}"
    else:
        text = f":white_check_mark: Resolved: {alert.message}"
    return {"text": text, "kind": alert.kind, "subject": alert.subject, "state": change,
            "opened_at": alert.opened_at.isoformat(),
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None}


def _notify(alert, change):
    """POST the change to the webhook through the guarded fetcher; a failure is kept on the alert and logged
    (without the URL: it carries the webhook's secret)."""
    url = settings.get("alerts.webhook_url")
    if not url:
        return
    allow = (urlsplit(url).hostname or "",) if settings.get("alerts.webhook_internal") else ()
    try:
        status, _answer = fetch.post(url, json.dumps(payload(alert, change)).encode(), allow_hosts=allow,
                                     headers={"Content-Type": "application/json"}, max_bytes=1024,
                                     timeout=WEBHOOK_TIMEOUT)
        if status >= 300:  # no redirect is followed: a POST's body is for the address it was sent to
            raise fetch.FetchError(f"The webhook answered {status}.")
        alert.notify_error = None
    except fetch.FetchError as exc:
        alert.notify_error = str(exc)[:300]
        log.warning("alert %s: webhook post failed: %s", alert.id, exc)
