"""Email: the one way a message leaves. queue() adds an EmailLog row to the caller's transaction; once that
commits the id goes to the workers (RQ with retries, or the in-process pool), and send() renders and delivers it.

A message is written in the customer's language (else the site's default): the owner's template for that
language, then for the default language (services/mail_templates.py, edited in the admin), then the shipped files
app/templates/email/[<language>/]<name>.subject.txt, .txt and .html. Links and tokens are made when the message
is sent, so neither the log row nor the queue ever holds a token.
"""
import logging
import smtplib
import ssl
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

import sqlalchemy as sa
from flask import current_app, render_template
from jinja2 import TemplateNotFound

from app.extensions import db
from app.models import EmailLog, Job, User
from app.models.types import utcnow
from app.services import outbox, settings

log = logging.getLogger("neurapix.mail")

SMTP_TIMEOUT_SECONDS = 15


class MailError(Exception):
    """Why a message could not be sent; safe for the email log (never holds a password)."""


# name -> builder(user, params) returning the template context; a builder makes the links it needs.
_builders = {}


def message(name):
    """Register the context builder of the message `name` (its templates live in templates/email/)."""
    def register(builder):
        _builders[name] = builder
        return builder
    return register


def templates():
    return sorted(_builders)


def queue(user, template, to=None, **params):
    """Add a message for `user` to the caller's transaction; it is enqueued when that commits."""
    if template not in _builders:
        raise ValueError(f"unknown email template {template!r}")
    if user is not None and user.deleted_at:
        return None  # a deleted account's address is gone
    row = EmailLog(to_address=to or user.email, template=template, user_id=user.id if user else None,
                   params=params, status="queued")
    db.session.add(row)
    db.session.flush()
    OUTBOX.add(row.id)
    return row


def _send(email_id, final):
    send(email_id)


OUTBOX = outbox.Outbox("email", "app.tasks.send_email", _send, MailError, "MAIL_RETRY_SECONDS",
                       job_timeout=SMTP_TIMEOUT_SECONDS * 4)


def send(email_id):
    """Render and deliver one logged message; the row records the outcome. Raises MailError to be retried."""
    row = db.session.get(EmailLog, email_id)
    if row is None or row.status == "sent":
        return  # rolled back before it committed, or a redelivery of a message already sent
    row.attempts += 1
    try:
        _deliver(row)
    except MailError as exc:
        row.status, row.error = "failed", str(exc)[:2000]
        db.session.commit()
        log.warning("email %s (%s) failed on attempt %s: %s", row.id, row.template, row.attempts, exc)
        raise
    row.status, row.error, row.sent_at = "sent", None, utcnow()
    db.session.commit()


def _deliver(row):
    from app.services import mail_templates  # it imports this module

    user = db.session.get(User, row.user_id) if row.user_id else None
    base = settings.get("site.public_url")
    if not base:
        raise MailError("Set Settings → Site → Public URL first: emails link to the site at that address.")
    # Links are built against the public URL, never a request's Host header.
    with current_app.test_request_context(base_url=base):
        context = _builders[row.template](user, row.params or {})
        if context is None:
            raise MailError("Nothing to send: what this message was about no longer exists.")
        context.update(site_name=settings.get("site.name"), support_email=settings.get("site.support_email"))
        languages = mail_templates.languages_for(user)
        custom = mail_templates.render_custom(row.template, languages, context)
        if custom is not None:
            subject, text, html = custom["subject"], custom["text"], custom["html"] or None
        else:
            subject = " ".join(_render(row.template, "subject.txt", context, languages).split())
            text = _render(row.template, "txt", context, languages)
            html = _render(row.template, "html", context, languages)
    deliver(row.to_address, subject, text, html)


def _render(name, part, context, languages=None):
    languages = languages or [settings.get("site.default_language")]
    try:
        return render_template([f"email/{language}/{name}.{part}" for language in languages]
                               + [f"email/{name}.{part}"], **context)
    except TemplateNotFound:
        raise MailError(f"The email template {name}.{part} is missing.") from None


def deliver(to, subject, text, html=None):
    """Send one message now through the SMTP server in Settings → Email. Raises MailError."""
    host, port = settings.get("email.smtp_host"), settings.get("email.smtp_port")
    sender = settings.get("email.from_address")
    if not host or not sender:
        raise MailError("Email is not set up: fill in the SMTP host and the from address in Settings → Email.")
    msg = EmailMessage()
    msg["Subject"], msg["To"] = subject, to
    msg["From"] = formataddr((settings.get("site.name"), sender))
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    security = settings.get("email.smtp_security")
    try:
        if security == "tls":
            server = smtplib.SMTP_SSL(host, port, timeout=SMTP_TIMEOUT_SECONDS, context=ssl.create_default_context())
        else:
            server = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_SECONDS)
        with server:
            if security == "starttls":
                server.starttls(context=ssl.create_default_context())
            username = settings.get("email.smtp_username")
            if username:
                server.login(username, settings.get("email.smtp_password"))
            server.send_message(msg)
    except smtplib.SMTPAuthenticationError:
        raise MailError("The SMTP server refused the user name or password.") from None
    except smtplib.SMTPResponseException as exc:
        raise MailError(f"The SMTP server answered {exc.smtp_code}: "
                        f"{exc.smtp_error.decode(errors='replace')[:300]}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise MailError(f"Could not reach {host}:{port}: {type(exc).__name__}: {exc}"[:500]) from None


def send_test(actor, to):
    """The admin's "send test email": delivered now (the owner waits for the answer), logged like any send."""
    from app.services import audit

    row = EmailLog(to_address=to, template="test", user_id=actor.id, params={}, status="queued", attempts=1)
    db.session.add(row)
    audit.record("email_test", "EmailLog", None, new={"to": to}, actor=actor)
    try:
        base = settings.get("site.public_url")
        with current_app.test_request_context(base_url=base or "http://localhost"):
            context = {"site_name": settings.get("site.name")}
            deliver(to, _render("test", "subject.txt", context).strip(), _render("test", "txt", context),
                    _render("test", "html", context))
    except MailError as exc:
        row.status, row.error = "failed", str(exc)
        db.session.commit()
        raise
    row.status, row.sent_at = "sent", utcnow()
    db.session.commit()


@message("job_failed")
def _job_failed(user, params):
    job = db.session.get(Job, params.get("job_id"))
    if job is None or user is None:
        return None
    from app.services import jobs
    from app.services.urls import absolute_url

    return {"user": user, "job": job, "notice": jobs.customer_notice(job),
            "job_url": absolute_url("site.job", job_id=job.id),
            "preferences_url": absolute_url("site.account")}


def job_failed(job_id):
    """The customer's "your job failed and was refunded" email, unless they opted out (joins the transaction)."""
    job = db.session.get(Job, job_id)
    user = db.session.get(User, job.user_id) if job and job.user_id else None
    if user is not None and job.refunded and user.role == "customer" and user.email_job_failed:
        queue(user, "job_failed", job_id=job_id)


def recently_queued(user, template, seconds):
    """True when this message went to this user less than `seconds` ago (a throttle on requestable emails)."""
    since = utcnow() - timedelta(seconds=seconds)
    return db.session.scalar(sa.select(EmailLog.id).where(
        EmailLog.user_id == user.id, EmailLog.template == template, EmailLog.created_at >= since).limit(1)) is not None
