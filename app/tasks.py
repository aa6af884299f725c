"""RQ entry points: thin wrappers that give each task a fresh database session and call services."""
from app.extensions import db
from app.services import alerts, analytics, app_webhooks, backup, jobs, mail, pageviews


def process_job(job_id):
    try:
        jobs.run(job_id)
    finally:
        # Nothing read for one job may be reused by the next: admin edits apply at once.
        db.session.remove()


def make_backup(backup_id):
    try:
        backup.run(backup_id)
    finally:
        db.session.remove()


def backup_tick():
    """Enqueued by scheduler.py every BACKUP_TICK_SECONDS: makes the daily backup when it is due."""
    try:
        backup.run_due()
    finally:
        db.session.remove()


def check_job(job_id, claim, polls=0):
    try:
        jobs.check(job_id, claim, polls)
    finally:
        db.session.remove()


def send_email(email_id):
    """One logged email; a MailError makes RQ retry it per MAIL_RETRY_SECONDS."""
    try:
        mail.send(email_id)
    finally:
        db.session.remove()


def deliver_webhook(delivery_id):
    """One attempt at a client app's webhook; DeliveryFailed makes RQ retry it per WEBHOOK_RETRY_SECONDS."""
    try:
        app_webhooks.deliver(delivery_id)
    finally:
        db.session.remove()


def analytics_tick():
    """Enqueued by scheduler.py every ANALYTICS_TICK_SECONDS: rollups of changed days, page view counters
    into the database, then alerts (which read fresh figures)."""
    try:
        analytics.refresh_changed()
        pageviews.flush()
        alerts.check()
    finally:
        db.session.remove()
