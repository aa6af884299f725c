"""Money: Stripe and PayPal webhooks applied exactly once and in the right order, checkout and the
billing portal through the real SDK, manual payments, refunds that never go below zero."""
import hashlib
import hmac
import json
import time

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, CreditLedger, Payment, Plan, User, WebhookEvent
from tests import pipeline as p
from tests.helpers import login, make_user, post
from tests.payment_servers import PayPalAPIServer, StripeAPIServer

WHSEC = "whsec_test_contract_secret"


def configure(app, **values):
    """Payment settings as an owner would enter them in Settings → Payments (stored encrypted)."""
    from app.services import settings

    with app.app_context():
        settings.update({f"payments.{key}": value for key, value in values.items()})


def stripe_event(event_type, obj, created=None, event_id=None):
    return {"id": event_id or f"evt_{time.time_ns()}", "object": "event", "type": event_type, "api_version": "2024-06-20",
            "created": created or int(time.time()), "livemode": False, "data": {"object": obj}}


def send_stripe(client, event, secret=WHSEC, timestamp=None):
    body = json.dumps(event)
    t = int(timestamp or time.time())
    signature = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    return client.post("/webhooks/stripe", data=body, content_type="application/json",
                       headers={"Stripe-Signature": f"t={t},v1={signature}"})


@pytest.fixture
def shop(app):
    configure(app, stripe_webhook_secret=WHSEC, stripe_secret_key="sk_test_contract")
    with app.app_context():
        pack = Plan(name="Starter", kind="pack", price=500, credits=50, stripe_price_id="price_pack")
        monthly = Plan(name="Pro", kind="monthly", price=1900, credits=300, stripe_price_id="price_pro")
        b2b = Plan(name="Acme", kind="monthly", price=99900, credits=10000, hidden=True, stripe_price_id="price_acme")
        db.session.add_all([pack, monthly, b2b])
        db.session.commit()
        user = make_user("customer", email="buyer@example.com")
        db.session.execute(sa.update(User).where(User.id == user.id).values(stripe_customer_id="cus_buyer"))
        db.session.commit()
        return {"user": user.id, "pack": pack.id, "pro": monthly.id, "acme": b2b.id}


def _user(app, user_id):
    with app.app_context():
        user = db.session.get(User, user_id)
        db.session.expunge(user)
        return user


def _count(app, model, *where):
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def _pack_paid(shop, event_id="evt_pack_1"):
    return stripe_event("checkout.session.completed", {
        "id": "cs_1", "object": "checkout.session", "mode": "payment", "payment_status": "paid",
        "payment_intent": "pi_1", "amount_total": 500, "currency": "usd", "customer": "cus_buyer",
        "metadata": {"user_id": str(shop["user"]), "plan_id": str(shop["pack"])}}, event_id=event_id)


def test_signed_webhook_grants_credits_once_across_replays(app, client, shop):
    event = _pack_paid(shop)
    answers = [send_stripe(client, event) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert [a.get_json()["status"] for a in answers] == ["applied"] + ["duplicate"] * 4
    assert _user(app, shop["user"]).balance == 50
    with app.app_context():
        payment = db.session.scalars(sa.select(Payment)).one()
        assert (payment.status, payment.amount, payment.currency, payment.credits) == ("succeeded", 500, "USD", 50)
        assert payment.plan_name == "Starter" and payment.external_id == "pi_1"
    assert _count(app, CreditLedger, CreditLedger.kind == "purchase") == 1
    assert _count(app, WebhookEvent) == 1


@pytest.mark.parametrize("header", [None, "t=1,v1=deadbeef", "garbage"])
def test_bad_or_missing_signature_is_400_and_changes_nothing(app, client, shop, header):
    body = json.dumps(_pack_paid(shop))
    headers = {"Stripe-Signature": header} if header else {}
    resp = client.post("/webhooks/stripe", data=body, content_type="application/json", headers=headers)
    assert resp.status_code == 400
    assert _user(app, shop["user"]).balance == 0 and _count(app, Payment) == 0 and _count(app, WebhookEvent) == 0


def test_a_signature_made_with_another_secret_or_too_old_is_refused(app, client, shop):
    assert send_stripe(client, _pack_paid(shop), secret="whsec_other").status_code == 400
    assert send_stripe(client, _pack_paid(shop), timestamp=time.time() - 3600).status_code == 400
    assert _user(app, shop["user"]).balance == 0


def _subscription(shop, status, created, event_type="customer.subscription.updated", price="price_pro"):
    return stripe_event(event_type, {
        "id": "sub_1", "object": "subscription", "customer": "cus_buyer", "status": status,
        "items": {"data": [{"price": {"id": price}, "current_period_end": created + 30 * 86400}]},
        "metadata": {"user_id": str(shop["user"])}}, created=created)


def test_subscription_events_out_of_order_end_in_the_right_state(app, client, shop):
    t0 = int(time.time()) - 1000
    invoice = stripe_event("invoice.payment_succeeded", {
        "id": "in_1", "object": "invoice", "customer": "cus_buyer", "subscription": "sub_1", "amount_paid": 1900,
        "currency": "usd", "lines": {"data": [{"price": {"id": "price_pro"}}]}}, created=t0 + 2)
    # Delivered newest first: past_due (t0+20), then the invoice, then the stale "active" (t0+10).
    for event in (_subscription(shop, "past_due", t0 + 20), invoice, _subscription(shop, "active", t0 + 10)):
        assert send_stripe(client, event).status_code == 200
    user = _user(app, shop["user"])
    assert user.subscription_status == "past_due" and user.plan_id == shop["pro"] and user.balance == 300

    # Deleted (t0+40) arrives before an update stamped t0+30: the subscription stays ended.
    send_stripe(client, _subscription(shop, "canceled", t0 + 40, "customer.subscription.deleted"))
    send_stripe(client, _subscription(shop, "active", t0 + 30))
    user = _user(app, shop["user"])
    assert user.subscription_status == "canceled" and user.plan_id is None


def test_refund_takes_back_credits_never_below_zero_and_flags_the_shortfall(app, client, shop):
    send_stripe(client, _pack_paid(shop))
    with app.app_context():
        from app.services import credits

        credits.debit(shop["user"], 45, reason="spent on jobs")
        db.session.commit()
    refund = stripe_event("charge.refunded", {"id": "ch_1", "object": "charge", "payment_intent": "pi_1",
                                              "amount_refunded": 500, "currency": "usd", "customer": "cus_buyer"})
    for _ in range(3):
        assert send_stripe(client, refund).status_code == 200
    user = _user(app, shop["user"])
    assert user.balance == 0 and user.credit_shortfall == 45
    with app.app_context():
        payment = db.session.scalars(sa.select(Payment)).one()
        assert payment.status == "refunded" and payment.refunded_credits == 50
        assert p.ledger_sum(shop["user"]) == 0
    # A late replay of the original payment never credits a refunded payment again.
    send_stripe(client, _pack_paid(shop, event_id="evt_pack_late"))
    assert _user(app, shop["user"]).balance == 0


def test_checkout_sends_the_right_price_mode_customer_and_metadata(app, client, shop):
    with StripeAPIServer() as stripe_api:
        configure(app, stripe_api_base=stripe_api.url)
        with app.app_context():
            fresh = make_user("customer", email="new@example.com")
        login(client, fresh)
        resp = post(client, f"/checkout/{shop['pro']}")
        assert resp.status_code == 303 and resp.headers["Location"].startswith("https://checkout.stripe.com/")
        customer, session = stripe_api.form(0), stripe_api.form(1)
        assert stripe_api.requests[0]["path"] == "/v1/customers" and customer["email"] == "new@example.com"
        assert stripe_api.requests[1]["path"] == "/v1/checkout/sessions"
        assert session["mode"] == "subscription" and session["line_items[0][price]"] == "price_pro"
        assert session["customer"].startswith("cus_") and session["metadata[plan_id]"] == str(shop["pro"])
        assert session["metadata[user_id]"] == str(fresh.id)
        assert session["subscription_data[metadata][user_id]"] == str(fresh.id)
        assert stripe_api.requests[1]["headers"].get("idempotency-key")
        assert _user(app, fresh.id).stripe_customer_id == session["customer"]

        resp = post(client, f"/checkout/{shop['pack']}")
        assert stripe_api.form(2)["mode"] == "payment" and len(stripe_api.requests) == 3  # customer reused
        assert post(client, f"/checkout/{shop['acme']}").status_code == 404  # hidden plans are not for sale

        resp = post(client, "/account/billing")
        assert resp.status_code == 303 and resp.headers["Location"].startswith("https://billing.stripe.com/")
        assert stripe_api.requests[-1]["path"] == "/v1/billing_portal/sessions"



def _paypal_event(kind, resource, event_id):
    return {"id": event_id, "event_type": kind, "resource_type": "capture", "resource": resource}


def _send_paypal(client, event, signature="valid-sig"):
    return client.post("/webhooks/paypal", data=json.dumps(event), content_type="application/json", headers={
        "PAYPAL-AUTH-ALGO": "SHA256withRSA", "PAYPAL-CERT-URL": "https://api.paypal.com/v1/notifications/certs/X",
        "PAYPAL-TRANSMISSION-ID": "tx-1", "PAYPAL-TRANSMISSION-SIG": signature,
        "PAYPAL-TRANSMISSION-TIME": "2026-11-24T10:00:00Z"})


def test_paypal_capture_is_verified_with_paypal_and_applied_once(app, client, shop):
    with PayPalAPIServer() as paypal:
        configure(app, paypal_api_base=paypal.url, paypal_client_id="paypal-client",
                  paypal_client_secret="paypal-secret", paypal_webhook_id="WH-123")
        capture = _paypal_event("PAYMENT.CAPTURE.COMPLETED", {
            "id": "CAP-1", "status": "COMPLETED", "amount": {"currency_code": "USD", "value": "5.00"},
            "custom_id": f"{shop['user']}:{shop['pack']}"}, "WH-EVT-1")
        assert _send_paypal(client, capture, signature="forged").status_code == 400
        assert _user(app, shop["user"]).balance == 0
        for _ in range(3):
            assert _send_paypal(client, capture).status_code == 200
        verify = json.loads(next(r["raw"] for r in paypal.requests
                                 if r["path"] == "/v1/notifications/verify-webhook-signature"))
        assert verify["webhook_id"] == "WH-123" and verify["transmission_id"] == "tx-1"
        assert verify["auth_algo"] == "SHA256withRSA" and verify["webhook_event"]["id"] == "WH-EVT-1"
        assert _user(app, shop["user"]).balance == 50

        refund = _paypal_event("PAYMENT.CAPTURE.REFUNDED", {
            "id": "REF-1", "status": "COMPLETED", "amount": {"currency_code": "USD", "value": "5.00"},
            "links": [{"rel": "up", "href": "https://api.paypal.com/v2/payments/captures/CAP-1"}]}, "WH-EVT-2")
        assert _send_paypal(client, refund).status_code == 200
        assert _send_paypal(client, refund).get_json()["status"] == "duplicate"
    assert _user(app, shop["user"]).balance == 0
    with app.app_context():
        assert db.session.scalars(sa.select(Payment.status)).one() == "refunded"


def test_manual_payment_recorded_by_an_admin_grants_its_credits(app, client, shop):
    with app.app_context():
        admin = make_user("admin")
    login(client, admin)
    resp = post(client, "/admin/payments/new/", {"user": str(shop["user"]), "plan": str(shop["pack"]),
                                                 "amount": "500", "currency": "EUR", "credits": "0",
                                                 "note": "bank transfer 42"})
    assert resp.status_code == 302
    assert _user(app, shop["user"]).balance == 50
    with app.app_context():
        payment = db.session.scalars(sa.select(Payment)).one()
        assert (payment.provider, payment.status, payment.recorded_by_id) == ("manual", "succeeded", admin.id)
        assert db.session.scalars(sa.select(AuditLog.entity).where(AuditLog.entity == "Payment")).all() == ["Payment"]


# --- support tools ---


@pytest.mark.parametrize("role,allowed", [("admin", True), ("support", True), ("viewer", False)])
def test_staff_credit_adjustments_need_a_reason_and_leave_ledger_and_audit(app, client, role, allowed):
    with app.app_context():
        customer = p.funded_customer(10)
        staff = make_user(role)
    login(client, staff)
    url = f"/admin/users/credits?id={customer.id}"
    if not allowed:
        assert client.get(url).status_code == 403
        assert post(client, url, {"amount": "5", "reason": "goodwill"}).status_code == 403
        assert _user(app, customer.id).balance == 10
        return
    assert "reason is required" in post(client, url, {"amount": "5", "reason": " "}).get_data(as_text=True)
    assert post(client, url, {"amount": "5", "reason": "goodwill after outage"}).status_code == 302
    assert "the balance is 15" in post(client, url, {"amount": "-20", "reason": "typo"}).get_data(as_text=True)
    assert post(client, url, {"amount": "-3", "reason": "duplicate grant"}).status_code == 302
    with app.app_context():
        assert p.balance(customer.id) == 12 == p.ledger_sum(customer.id)
        rows = db.session.scalars(sa.select(CreditLedger).where(CreditLedger.kind == "adjust")
                                  .order_by(CreditLedger.id)).all()
        assert [(r.amount, r.reason, r.actor_id) for r in rows] == [(5, "goodwill after outage", staff.id),
                                                                     (-3, "duplicate grant", staff.id)]
        assert db.session.scalars(sa.select(AuditLog.action)).all() == ["credits", "credits"]


@pytest.mark.parametrize("role,allowed", [("support", True), ("viewer", False)])
def test_ban_ends_sessions_cancels_and_refunds_queued_jobs(app, client, role, allowed):
    with app.app_context():
        p.local_function(price_per_use=4)
        customer = p.funded_customer(10)
        from app.services import jobs

        job_id = jobs.submit(customer, "enhance", p_image()).id
        staff = make_user(role)
    customer_client = app.test_client()
    login(customer_client, customer)
    assert customer_client.get("/account").status_code == 200
    login(client, staff)
    resp = post(client, f"/admin/users/ban?id={customer.id}", {"reason": "chargeback fraud"})
    if not allowed:
        assert resp.status_code == 403 and not _user(app, customer.id).is_banned
        return
    assert resp.status_code == 302
    user = _user(app, customer.id)
    assert user.is_banned and user.ban_reason == "chargeback fraud" and user.balance == 10
    with app.app_context():
        assert p.job(job_id).status == "cancelled" and p.refunds(job_id) == 1
    assert customer_client.get("/account").status_code == 302  # the session is over
    assert post(client, f"/admin/users/ban?id={customer.id}", {}).status_code == 302  # unban
    assert not _user(app, customer.id).is_banned


def p_image():
    from tests.images import image_bytes

    return image_bytes()


def test_only_admins_change_roles_and_export_users(app, client):
    with app.app_context():
        support, admin = make_user("support"), make_user("admin")
        make_user("customer", email="someone@example.com")
    login(client, support)
    assert client.get("/admin/users/export/csv/").status_code == 403
    login(client, admin)
    resp = client.get("/admin/users/export/csv/?search=someone")
    assert resp.status_code == 200 and "someone@example.com" in resp.get_data(as_text=True)
    assert "password" not in resp.get_data(as_text=True).lower()


# --- plans ---


def test_plan_limits_and_hidden_plans_are_enforced(app, client, shop):
    from app.services import jobs
    from tests.images import noise_png

    with app.app_context():
        fn = p.local_function(max_file_size=1024 * 1024)
        db.session.get(Plan, shop["acme"]).limits = {"jobs_per_day": 2, "max_file_size": 8 * 1024 * 1024}
        user = p.funded_customer(20)
        db.session.get(User, user.id).plan_id = shop["acme"]
        db.session.commit()
        user = db.session.get(User, user.id)
        big = noise_png()  # ~1.9 MB: over the function's 1 MB, under the plan's 8 MB
        assert jobs.submit(user, fn.key, big).status == "queued"
        jobs.submit(user, fn.key, p_image())
        with pytest.raises(jobs.SubmitError, match="Your plan allows 2 jobs a day") as exc:
            jobs.submit(user, fn.key, p_image())
        assert exc.value.status == 429
    assert "Acme" not in client.get("/pricing").get_data(as_text=True)
    assert "Pro" in client.get("/pricing").get_data(as_text=True)


def test_concurrent_admin_adjustments_and_job_debits_keep_balance_equal_to_ledger(app):
    from concurrent.futures import ThreadPoolExecutor

    from app.services import credits, jobs

    with app.app_context():
        p.local_function(price_per_use=1)
        user = p.funded_customer(40)
        admin = make_user("admin")
    image = p_image()

    def work(i):
        with app.app_context():
            try:
                if i % 3 == 0:
                    credits.adjust(user.id, 2 if i % 2 else -2, reason=f"adjust {i}", actor_id=admin.id)
                    db.session.commit()
                else:
                    jobs.submit(db.session.get(User, user.id), "enhance", image)
            except (ValueError, jobs.SubmitError):
                db.session.rollback()

    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(work, range(60)))
    with app.app_context():
        assert p.balance(user.id) == p.ledger_sum(user.id) >= 0
