"""Customer email and accounts, end to end: a real SMTP server on 127.0.0.1 receives every message, a real RQ
worker sends it, and the test client follows the links in the received emails."""
from datetime import timedelta

import pytest
import sqlalchemy as sa
from itsdangerous.timed import TimestampSigner

from app.extensions import db
from app.models import AuditLog, CreditLedger, EmailLog, User
from app.services import jobs, settings
from tests import pipeline as p
from tests.helpers import flashes, login, make_user, post
from tests.images import image_bytes
from tests.mail_server import SmtpServer

PASSWORD = "correct-horse-battery"
NEW_PASSWORD = "violet-lantern-orchard-42"


@pytest.fixture
def smtp(app):
    with SmtpServer() as server:
        with app.app_context():
            settings.update(server.settings())
        yield server


def _user(app, email):
    with app.app_context():
        user = db.session.scalars(sa.select(User).where(User.email == email)).one()
        db.session.expunge(user)
        return user


def _emails(app, **where):
    with app.app_context():
        stmt = sa.select(EmailLog).filter_by(**where).order_by(EmailLog.id)
        rows = db.session.scalars(stmt).all()
        for row in rows:
            db.session.expunge(row)
        return rows


def _sign_up(client, email):
    resp = post(client, "/signup", {"email": email, "password": PASSWORD, "confirm": PASSWORD})
    assert resp.status_code == 302, flashes(resp.get_data(as_text=True))


def _welcome_grants(app, user_id):
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(CreditLedger).where(
            CreditLedger.user_id == user_id, CreditLedger.reason == "Welcome credits"))


def test_sign_up_emails_a_link_that_verifies_and_grants_welcome_credits_once(app, client, smtp):
    with app.app_context():
        settings.update({"customers.welcome_credits": 15})
    _sign_up(client, "new@example.com")
    p.drain(app)
    (message,) = smtp.to("new@example.com")
    assert "Confirm your email" in message["Subject"] and "<a href=" in smtp.html(message)
    link = smtp.link(message, "/verify-email/")

    resp = client.get(link)
    assert resp.status_code == 302
    user = _user(app, "new@example.com")
    assert user.email_verified_at is not None and user.balance == 15
    # The link again, and a second verification path, grant nothing more.
    assert client.get(link).status_code == 302
    assert _user(app, "new@example.com").balance == 15 and _welcome_grants(app, user.id) == 1
    (row,) = _emails(app, template="verify_email")
    assert (row.status, row.attempts, row.to_address) == ("sent", 1, "new@example.com")
    assert "token" not in str(row.params)


def test_a_forged_verification_link_changes_nothing(app, client, smtp):
    _sign_up(client, "forged@example.com")
    resp = client.get("/verify-email/not-a-token")
    assert resp.status_code == 400
    assert _user(app, "forged@example.com").email_verified_at is None


def test_unverified_customers_may_not_run_jobs_when_the_owner_requires_it(app, client, smtp):
    with app.app_context():
        fn = p.local_function(price_per_use=1)
        user = p.funded_customer(5)
        settings.update({"customers.require_verified_email": True})
        with pytest.raises(jobs.SubmitError, match="Confirm your email address"):
            jobs.submit(db.session.get(User, user.id), fn.key, image_bytes())
        assert p.jobs_count() == 0 and p.balance(user.id) == 5
        db.session.execute(sa.update(User).where(User.id == user.id).values(email_verified_at=sa.func.now()))
        db.session.commit()
        assert jobs.submit(db.session.get(User, user.id), fn.key, image_bytes()).status == "queued"


def test_forgotten_password_link_works_once_and_ends_every_session(app, client, smtp):
    with app.app_context():
        user = make_user("customer", email="forgot@example.com", password=PASSWORD)
    signed_in = app.test_client()
    login(signed_in, user)
    assert post(client, "/forgot-password", {"email": "forgot@example.com"}).status_code == 302
    # An unknown address gets the same answer and no email.
    assert post(client, "/forgot-password", {"email": "nobody@example.com"}).status_code == 302
    p.drain(app)
    assert len(smtp.messages) == 1
    link = smtp.link(smtp.to("forgot@example.com")[0], "/reset-password/")
    assert "?" not in link  # the token is in the path, never in a query string

    assert post(client, link, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}).status_code == 302
    assert _user(app, "forgot@example.com").check_password(NEW_PASSWORD)
    assert signed_in.get("/account").status_code == 302
    again = client.get(link)
    assert again.status_code == 400 and "already been used" in again.get_data(as_text=True)


def _age_emails(app, seconds):
    """Move every logged email into the past, as if that much time had gone by since it was sent."""
    with app.app_context():
        db.session.execute(sa.update(EmailLog).values(created_at=EmailLog.created_at - timedelta(seconds=seconds)))
        db.session.commit()


def test_reset_emails_are_throttled_per_account(app, client, smtp):
    with app.app_context():
        make_user("customer", email="flood@example.com")
    for _ in range(5):
        assert post(client, "/forgot-password", {"email": "flood@example.com"}).status_code == 302
    p.drain(app)
    assert len(smtp.to("flood@example.com")) == 1
    _age_emails(app, 61)
    post(client, "/forgot-password", {"email": "flood@example.com"})
    p.drain(app)
    assert len(smtp.to("flood@example.com")) == 2


def test_a_reset_link_dies_when_the_password_changes_and_when_it_expires(app, client, smtp, monkeypatch):
    with app.app_context():
        user = make_user("customer", email="expiry@example.com", password=PASSWORD)
    post(client, "/forgot-password", {"email": "expiry@example.com"})
    p.drain(app)
    first = smtp.link(smtp.to("expiry@example.com")[0], "/reset-password/")
    # The customer changes the password by other means: the unused link is dead.
    owner = app.test_client()
    login(owner, user)
    changed = post(owner, "/account/security/password",
                   {"current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert changed.status_code == 302
    assert client.get(first).status_code == 400

    _age_emails(app, 61)
    post(client, "/forgot-password", {"email": "expiry@example.com"})
    p.drain(app)
    fresh = smtp.link(smtp.to("expiry@example.com")[-1], "/reset-password/")
    assert fresh != first and client.get(fresh).status_code == 200
    # Three hours later (the link lives two), it has expired.
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) + 3 * 3600)
    expired = client.get(fresh)
    assert expired.status_code == 400 and "expired" in expired.get_data(as_text=True)


def test_changing_email_waits_for_the_link_sent_to_the_new_address(app, client, smtp):
    with app.app_context():
        user = make_user("customer", email="old@example.com", password=PASSWORD)
    login(client, user)
    wrong = post(client, "/account/security/email", {"new_email": "new-addr@example.com", "password": "nope"})
    assert wrong.status_code == 400
    resp = post(client, "/account/security/email", {"new_email": "new-addr@example.com", "password": PASSWORD})
    assert resp.status_code == 302
    assert _user(app, "old@example.com").email == "old@example.com"  # nothing changes before the link
    p.drain(app)
    (message,) = smtp.to("new-addr@example.com")
    link = smtp.link(message, "/confirm-email/")

    visitor = app.test_client()
    assert visitor.get(link).status_code == 302
    changed = _user(app, "new-addr@example.com")
    assert changed.id == user.id and changed.email_verified_at is not None
    assert client.get("/account").status_code == 302  # sessions under the old address ended
    assert visitor.get(link).status_code == 400  # single use
    with app.app_context():
        row = db.session.scalars(sa.select(AuditLog).where(AuditLog.action == "email_change")).one()
        assert row.old_values == {"email": "old@example.com"}


def test_support_sends_a_reset_email_and_never_sees_the_link(app, client, smtp):
    with app.app_context():
        support = make_user("support", email="help@example.com")
        customer = make_user("customer", email="cust@example.com")
    login(client, support)
    resp = post(client, f"/admin/users/reset-email?id={customer.id}", follow_redirects=True)
    assert resp.status_code == 200 and "/reset-password/" not in resp.get_data(as_text=True)
    p.drain(app)
    link = smtp.link(smtp.to("cust@example.com")[0], "/reset-password/")
    assert app.test_client().get(link).status_code == 200
    with app.app_context():
        row = db.session.scalars(sa.select(AuditLog).where(AuditLog.action == "password_reset_email")).one()
        assert (row.entity_id, row.actor_email) == (str(customer.id), "help@example.com")


def test_a_refused_send_is_retried_and_every_attempt_logged(app, client, smtp):
    smtp.refuse = 1
    with app.app_context():
        make_user("customer", email="retry@example.com")
    post(client, "/forgot-password", {"email": "retry@example.com"})
    p.drain(app)
    (row,) = _emails(app, template="password_reset")
    assert (row.status, row.attempts, row.error) == ("sent", 2, None)
    assert len(smtp.to("retry@example.com")) == 1


def test_a_send_that_keeps_failing_ends_failed_with_the_reason(app, client, smtp):
    smtp.refuse = 10
    with app.app_context():
        make_user("customer", email="down@example.com")
    post(client, "/forgot-password", {"email": "down@example.com"})
    p.drain(app)
    (row,) = _emails(app, template="password_reset")
    # One try plus one retry per MAIL_RETRY_SECONDS entry (two in testing).
    assert (row.status, row.attempts) == ("failed", 3) and "451" in row.error


def test_send_test_email_is_for_admins(app, client, smtp):
    with app.app_context():
        admin, viewer = make_user("admin", email="owner@example.com"), make_user("viewer")
    login(client, admin)
    resp = post(client, "/admin/settings/test-email", {"to": ""}, follow_redirects=True)
    assert "Test email sent to owner@example.com" in resp.get_data(as_text=True)
    assert "test email" in smtp.to("owner@example.com")[0]["Subject"]
    other = app.test_client()
    login(other, viewer)
    assert post(other, "/admin/settings/test-email", {"to": "x@example.com"}).status_code == 403
    assert not smtp.to("x@example.com")
    (row,) = _emails(app, template="test")
    assert row.status == "sent"


def test_send_test_email_reports_a_bad_server(app, client, smtp):
    with app.app_context():
        admin = make_user("admin", email="owner@example.com")
        settings.update({"email.smtp_port": 1})
    login(client, admin)
    page = post(client, "/admin/settings/test-email", {}, follow_redirects=True).get_data(as_text=True)
    assert "The test email was not sent: Could not reach 127.0.0.1:1" in page
    assert _emails(app, template="test")[0].status == "failed"


def test_smtp_password_is_stored_encrypted_and_masked(app, client, smtp):
    with app.app_context():
        admin = make_user("admin")
        settings.update({"email.smtp_password": "s3cret-smtp-pass"})
        raw = db.session.execute(sa.text("SELECT value FROM settings WHERE key = 'email.smtp_password'")).scalar()
        assert "s3cret-smtp-pass" not in str(raw)
    login(client, admin)
    assert "s3cret-smtp-pass" not in client.get("/admin/settings/").get_data(as_text=True)


def test_a_failed_job_emails_the_customer_unless_they_opted_out(app, client, smtp):
    with app.app_context():
        fn = p.local_function(price_per_use=2)
        keen = p.funded_customer(5, email="keen@example.com")
        quiet = p.funded_customer(5, email="quiet@example.com", email_job_failed=False)
        job_ids = [jobs.submit(db.session.get(User, u.id), fn.key, image_bytes()).id for u in (keen, quiet)]
        for job_id in job_ids:
            jobs._finish(job_id, jobs.Job.id == job_id, "provider gave up")
    p.drain(app)
    (message,) = smtp.to("keen@example.com")
    assert f"Job #{job_ids[0]} failed" in message["Subject"] and "refunded" in smtp.text(message)
    assert not smtp.to("quiet@example.com")


def test_a_customer_turns_off_job_failure_emails(app, client, smtp):
    with app.app_context():
        user = make_user("customer")
    login(client, user)
    assert post(client, "/account/security/email-preferences", {}).status_code == 302
    assert _user(app, user.email).email_job_failed is False


def test_a_banned_customer_is_told_why(app, client, smtp):
    with app.app_context():
        admin, customer = make_user("admin"), make_user("customer", email="banned@example.com")
    login(client, admin)
    post(client, f"/admin/users/ban?id={customer.id}", {"reason": "chargeback fraud"})
    p.drain(app)
    (message,) = smtp.to("banned@example.com")
    assert "suspended" in message["Subject"] and "chargeback fraud" in smtp.text(message)


def test_a_paid_order_emails_a_receipt_and_a_refund_says_what_was_taken_back(app, smtp):
    from decimal import Decimal

    from app.models import Order, Plan
    from app.services import payment_events as events
    from app.services import payments

    with app.app_context():
        user = make_user("customer", email="buyer@example.com")
        plan = Plan(name="Starter", price=900, currency="EUR", kind="pack", credits=100)
        db.session.add(plan)
        db.session.flush()
        order = Order(user_id=user.id, plan_id=plan.id, plan_name="Starter", gateway="stripe", amount=900,
                      currency="EUR", credits=100)
        db.session.add(order)
        db.session.commit()
        paid = events.PaymentEvent(provider="stripe", event_id="evt_1", source_type="checkout.session.completed",
                                   kind=events.ORDER_PAID, order_ref=str(order.id), external_id="pi_1", paid=True,
                                   amount=Decimal("9.00"), currency="EUR")
        assert payments.apply(paid) == "applied"
        refund = events.PaymentEvent(provider="stripe", event_id="evt_2", source_type="charge.refunded",
                                     kind=events.REFUNDED, external_id="pi_1", amount=Decimal("9.00"),
                                     currency="EUR")
        assert payments.apply(refund) == "applied"
    p.drain(app)
    receipt, refunded = smtp.to("buyer@example.com")
    assert "Starter, 9.00 EUR" in receipt["Subject"] and "Credits added: 100" in smtp.text(receipt)
    assert "refund" in refunded["Subject"] and "100 credits were removed" in smtp.text(refunded)


def _stored(ref):
    from app.services import storage

    try:
        storage.read(ref)
    except (FileNotFoundError, storage.StorageError):
        return False
    return True


def _finished_job(app, user_id):
    """A done job of the user's with its input file stored, as the pipeline leaves one."""
    with app.app_context():
        fn = p.local_function(price_per_use=1)
        job = jobs.submit(db.session.get(User, user_id), fn.key, image_bytes())
        p.drain(app)
        job = p.job(job.id)
        assert job.status == "done" and _stored(job.input_ref)
        return job.id, job.input_ref, job.output_ref


def test_a_customer_downloads_their_data_as_json(app, client, smtp):
    with app.app_context():
        user = p.funded_customer(5, email="mine@example.com")
    job_id, _in, _out = _finished_job(app, user.id)
    login(client, user)
    resp = client.get("/account/data.json")
    assert resp.status_code == 200 and "attachment" in resp.headers["Content-Disposition"]
    data = resp.get_json()
    assert data["account"]["email"] == "mine@example.com" and data["account"]["balance"] == 4
    assert [j["id"] for j in data["jobs"]] == [job_id]
    assert [r["amount"] for r in data["credit_ledger"]] == [5, -1]


@pytest.mark.parametrize("mode", ["anonymise", "delete"])
def test_deleting_an_account_removes_files_and_keeps_payments(app, client, smtp, mode):
    from app.models import Job, Payment

    with app.app_context():
        settings.update({"customers.deleted_jobs": mode})
        user = p.funded_customer(5, email="leaving@example.com")
        db.session.add(Payment(user_id=user.id, provider="manual", status="succeeded", amount=500, currency="EUR",
                               credits=5))
        db.session.commit()
    job_id, input_ref, output_ref = _finished_job(app, user.id)
    login(client, user)
    post(client, "/account/security/email", {"new_email": "next-address@example.com", "password": PASSWORD})
    wrong = post(client, "/account/delete", {"password": "not-my-password"})
    assert wrong.status_code == 400 and _user(app, "leaving@example.com").deleted_at is None
    assert post(client, "/account/delete", {"password": PASSWORD}).status_code == 302

    assert client.get("/account").status_code == 302
    with app.app_context():
        gone = db.session.get(User, user.id)
        assert gone.deleted_at and gone.email == f"deleted-{user.id}@deleted.invalid" and gone.is_banned
        assert not gone.check_password(PASSWORD)
        assert not _stored(input_ref) and not _stored(output_ref)
        job = db.session.get(Job, job_id)
        assert (job is None) if mode == "delete" else (job.input_ref is None and job.output_ref is None)
        assert db.session.scalars(sa.select(Payment).where(Payment.user_id == user.id)).one().amount == 500
        logged = db.session.scalars(sa.select(EmailLog).where(EmailLog.user_id == user.id)).all()
        assert [(e.template, e.to_address, e.params) for e in logged] == [
            ("change_email", f"deleted-{user.id}@deleted.invalid", {})]
    fresh = app.test_client()
    assert post(fresh, "/login", {"email": "leaving@example.com", "password": PASSWORD}).status_code == 401


def test_staff_cannot_delete_their_own_account_from_the_site(app, client, smtp):
    with app.app_context():
        support = make_user("support")
    login(client, support)
    resp = post(client, "/account/delete", {"password": PASSWORD})
    assert resp.status_code == 400 and "removed by an admin" in resp.get_data(as_text=True)
    assert _user(app, support.email).deleted_at is None


def test_the_development_server_log_hides_tokens_and_addresses(app):
    import io
    import logging

    written = io.StringIO()
    handler = logging.StreamHandler(written)
    logger = logging.getLogger("werkzeug")
    # Alembic's logging config (run by the app fixture's upgrade) disables loggers it does not name.
    was_disabled, logger.disabled = logger.disabled, False
    logger.addHandler(handler)
    try:
        logger.error('%s - - "%s" %s', "127.0.0.1", "GET /verify-email/tok.en?next=/x&e=a%40b.io HTTP/1.1", 302)
    finally:
        logger.removeHandler(handler)
        logger.disabled = was_disabled
    line = written.getvalue()
    assert "/verify-email/[redacted]" in line and "tok.en" not in line and "a%40b" not in line
