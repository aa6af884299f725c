"""Money: orders written before checkout, gateway events credited only against them (amount, currency, paid),
everything else recorded for review; Stripe and PayPal through the real SDK / HTTP against contract servers,
webhooks applied exactly once and in the right order, manual payments, refunds that never go below zero."""
import hashlib
import hmac
import json
import threading
import time

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, CreditLedger, Order, Payment, Plan, Setting, User, WebhookEvent
from tests import pipeline as p
from tests.helpers import form_values, login, make_user, post
from tests.payment_servers import PayPalAPIServer, StripeAPIServer

WHSEC = "whsec_test_contract_secret"


def configure(app, **values):
    """Payment settings as an owner would enter them in Settings → Payments (stored encrypted)."""
    from app.services import settings

    with app.app_context():
        settings.update({f"payments.{key}": value for key, value in values.items()})


def send_stripe(client, event, secret=WHSEC, timestamp=None):
    body = json.dumps(event)
    t = int(timestamp or time.time())
    signature = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    return client.post("/webhooks/stripe", data=body, content_type="application/json",
                       headers={"Stripe-Signature": f"t={t},v1={signature}"})


PAYPAL_HEADERS = {"PAYPAL-AUTH-ALGO": "SHA256withRSA",
                  "PAYPAL-CERT-URL": "https://api.paypal.com/v1/notifications/certs/X",
                  "PAYPAL-TRANSMISSION-ID": "tx-1", "PAYPAL-TRANSMISSION-SIG": "valid-sig",
                  "PAYPAL-TRANSMISSION-TIME": "2026-11-24T10:00:00Z"}


def send_paypal(client, event, **headers):
    """A PayPal webhook delivery; headers=None drops one (PAYPAL_TRANSMISSION_SIG=None)."""
    sent = dict(PAYPAL_HEADERS)
    for name, value in headers.items():
        name = name.replace("_", "-")
        if value is None:
            sent.pop(name)
        else:
            sent[name] = value
    body = event if isinstance(event, str) else json.dumps(event)
    return client.post("/webhooks/paypal", data=body, content_type="application/json", headers=sent)


@pytest.fixture
def shop(app):
    configure(app, stripe_webhook_secret=WHSEC, stripe_secret_key="sk_test_contract")
    with app.app_context():
        pack = Plan(name="Starter", kind="pack", price=500, credits=50, stripe_price_id="price_pack")
        monthly = Plan(name="Pro", kind="monthly", price=1900, credits=300, stripe_price_id="price_pro")
        b2b = Plan(name="Acme", kind="monthly", price=99900, credits=10000, hidden=True, stripe_price_id="price_acme")
        bulk = Plan(name="Acme bulk", kind="pack", price=50000, credits=100000, hidden=True)
        db.session.add_all([pack, monthly, b2b, bulk])
        db.session.commit()
        user = make_user("customer", email="buyer@example.com")
        return {"user": user.id, "buyer": user, "pack": pack.id, "pro": monthly.id, "acme": b2b.id, "bulk": bulk.id}


@pytest.fixture
def stripe_api(app, monkeypatch):
    """Stripe's API on 127.0.0.1, where the environment (app config STRIPE_API_BASE) points the SDK."""
    with StripeAPIServer() as server:
        monkeypatch.setitem(app.config, "STRIPE_API_BASE", server.url)
        yield server


@pytest.fixture
def paypal_api(app, monkeypatch):
    with PayPalAPIServer() as server:
        monkeypatch.setitem(app.config, "PAYPAL_API_BASE", server.url)
        configure(app, paypal_client_id="paypal-client", paypal_client_secret="paypal-secret",
                  paypal_webhook_id="WH-123")
        yield server


def _user(app, user_id):
    with app.app_context():
        user = db.session.get(User, user_id)
        db.session.expunge(user)
        return user


def _count(app, model, *where):
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def _rows(app, model, *where):
    with app.app_context():
        rows = db.session.scalars(sa.select(model).where(*where).order_by(model.id)).unique().all()
        for row in rows:
            db.session.expunge(row)
        return rows


def checkout(client, plan_id, gateway="stripe"):
    return post(client, f"/checkout/{plan_id}", {"gateway": gateway})


def start_stripe(client, plan_id):
    """The signed-in customer presses Buy/Subscribe: the Stripe Checkout Session id they are sent to."""
    resp = checkout(client, plan_id)
    assert resp.status_code == 303 and resp.headers["Location"].startswith("https://checkout.stripe.com/c/pay/")
    return resp.headers["Location"].rsplit("/", 1)[-1]


def start_paypal(client, plan_id):
    """The signed-in customer presses "Pay with PayPal": the PayPal order id they are sent to approve."""
    resp = checkout(client, plan_id, "paypal")
    assert resp.status_code == 303
    assert resp.headers["Location"].startswith("https://www.sandbox.paypal.com/checkoutnow?token=")
    return resp.headers["Location"].rsplit("=", 1)[-1]


def last_order(app):
    return _rows(app, Order)[-1]


# --- Stripe ---


def test_checkout_writes_the_order_first_and_names_it_at_stripe(app, client, shop, stripe_api):
    with app.app_context():
        fresh = make_user("customer", email="new@example.com")
    login(client, fresh)
    session_id = start_stripe(client, shop["pro"])
    order = last_order(app)
    assert (order.user_id, order.plan_id, order.plan_kind, order.gateway, order.status) == (
        fresh.id, shop["pro"], "monthly", "stripe", "pending")
    assert (order.amount, order.currency, order.credits, order.gateway_reference) == (1900, "USD", 300, session_id)
    customer, session = stripe_api.form(0), stripe_api.form(1)
    assert stripe_api.paths()[:2] == ["/v1/customers", "/v1/checkout/sessions"]
    assert customer["email"] == "new@example.com"
    # The order existed before Stripe heard of it: Stripe was given its id.
    assert session["client_reference_id"] == str(order.id) == session["metadata[order_id]"]
    assert session["subscription_data[metadata][order_id]"] == str(order.id)
    assert session["mode"] == "subscription" and session["line_items[0][price]"] == "price_pro"
    assert session["customer"].startswith("cus_") and stripe_api.requests[1]["headers"].get("idempotency-key")
    assert _user(app, fresh.id).stripe_customer_id == session["customer"]

    start_stripe(client, shop["pack"])
    assert stripe_api.form(2)["mode"] == "payment" and len(stripe_api.requests) == 3  # customer reused
    assert stripe_api.form(2)["payment_intent_data[metadata][order_id]"] == str(last_order(app).id)

    resp = post(client, "/account/billing")
    assert resp.status_code == 303 and resp.headers["Location"].startswith("https://billing.stripe.com/")
    assert stripe_api.paths()[-1] == "/v1/billing_portal/sessions"


def test_a_gateway_that_refuses_leaves_a_failed_order_and_a_clear_message(app, client, shop, monkeypatch):
    with StripeAPIServer(secret_key="sk_some_other_account") as wrong_account:
        monkeypatch.setitem(app.config, "STRIPE_API_BASE", wrong_account.url)
        login(client, shop["buyer"])
        resp = checkout(client, shop["pack"])
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/pricing")
    assert "Payments are unavailable right now" in client.get("/pricing").get_data(as_text=True)
    order = last_order(app)
    assert order.status == "failed" and "AuthenticationError" in order.error and order.gateway_reference is None


def test_honest_stripe_checkout_credits_once_across_replays(app, client, shop, stripe_api):
    login(client, shop["buyer"])
    session_id = start_stripe(client, shop["pack"])
    event = stripe_api.complete(session_id)
    answers = [send_stripe(client, event) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert [a.get_json()["status"] for a in answers] == ["applied"] + ["duplicate"] * 4
    assert _user(app, shop["user"]).balance == 50
    payment, = _rows(app, Payment)
    order = last_order(app)
    assert (payment.status, payment.amount, payment.currency, payment.credits) == ("succeeded", 500, "USD", 50)
    assert payment.plan_name == "Starter" and payment.order_id == order.id
    assert payment.external_id == event["data"]["object"]["payment_intent"]
    assert order.status == "paid" and order.paid_at is not None
    assert _count(app, CreditLedger, CreditLedger.kind == "purchase") == 1
    assert _count(app, WebhookEvent) == 1


@pytest.mark.parametrize("tampered,reason", [
    ({"amount_total": 1}, "paid 0.01 USD; the order is 5.00 USD"),
    ({"currency": "jpy"}, "paid 5.00 JPY; the order is 5.00 USD"),
    ({"payment_status": "unpaid"}, "not paid (status 'unpaid')"),
    ({"client_reference_id": "987654", "metadata": {"order_id": "987654"}}, "names no order of ours"),
], ids=["amount", "currency", "unpaid", "unknown-order"])
def test_stripe_checkout_not_matching_its_order_credits_nothing_and_needs_review(app, client, shop, stripe_api,
                                                                                 tampered, reason):
    login(client, shop["buyer"])
    session_id = start_stripe(client, shop["pack"])
    resp = send_stripe(client, stripe_api.complete(session_id, **tampered))
    assert resp.status_code == 200 and resp.get_json()["status"] == "review"
    assert _user(app, shop["user"]).balance == 0
    payment, = _rows(app, Payment)
    assert payment.status == "review" and reason in payment.review_reason and payment.credits == 0
    assert last_order(app).status == "pending" and _count(app, CreditLedger) == 0


def test_a_delayed_payment_is_credited_once_stripe_reports_the_money(app, client, shop, stripe_api):
    login(client, shop["buyer"])
    session_id = start_stripe(client, shop["pack"])
    unpaid = stripe_api.complete(session_id, payment_status="unpaid")
    assert send_stripe(client, unpaid).get_json()["status"] == "review"
    assert _user(app, shop["user"]).balance == 0
    paid = stripe_api.event("checkout.session.async_payment_succeeded", unpaid["data"]["object"] | {
        "payment_status": "paid"})
    assert send_stripe(client, paid).get_json()["status"] == "applied"
    assert send_stripe(client, paid).get_json()["status"] == "duplicate"
    payment, = _rows(app, Payment)
    assert (payment.status, payment.review_reason, payment.credits) == ("succeeded", None, 50)
    assert _user(app, shop["user"]).balance == 50


def test_bad_or_missing_signature_is_400_and_changes_nothing(app, client, shop):
    body = json.dumps(StripeAPIServer.event("checkout.session.completed", {"id": "cs_1", "client_reference_id": "1"}))
    for header in (None, "t=1,v1=deadbeef", "garbage"):
        headers = {"Stripe-Signature": header} if header else {}
        resp = client.post("/webhooks/stripe", data=body, content_type="application/json", headers=headers)
        assert resp.status_code == 400
    assert _count(app, Payment) == 0 and _count(app, WebhookEvent) == 0


def test_a_signature_made_with_another_secret_or_too_old_is_refused(app, client, shop, stripe_api):
    login(client, shop["buyer"])
    event = stripe_api.complete(start_stripe(client, shop["pack"]))
    assert send_stripe(client, event, secret="whsec_other").status_code == 400
    assert send_stripe(client, event, timestamp=time.time() - 3600).status_code == 400
    assert _user(app, shop["user"]).balance == 0 and _count(app, WebhookEvent) == 0


def _subscribe(app, client, shop, stripe_api, created):
    """Subscribe the buyer to Pro through Checkout; returns the Stripe subscription id."""
    login(client, shop["buyer"])
    completed = stripe_api.complete(start_stripe(client, shop["pro"]), created=created)
    assert send_stripe(client, completed).get_json()["status"] == "applied"
    return completed["data"]["object"]["subscription"]


def test_subscription_events_out_of_order_end_in_the_right_state(app, client, shop, stripe_api):
    t0 = int(time.time())
    sub = _subscribe(app, client, shop, stripe_api, created=t0)
    user = _user(app, shop["user"])
    assert (user.plan_id, user.subscription_id, user.subscription_status) == (shop["pro"], sub, "active")
    assert user.balance == 0  # credits come with each paid invoice
    invoice = stripe_api.invoice_paid(sub, created=t0 + 2)
    # Delivered newest first: past_due (t0+20), then the invoice, then the stale "active" (t0+10).
    for event in (stripe_api.subscription_changed(sub, "past_due", t0 + 20), invoice,
                  stripe_api.subscription_changed(sub, "active", t0 + 10)):
        assert send_stripe(client, event).status_code == 200
    user = _user(app, shop["user"])
    assert user.subscription_status == "past_due" and user.plan_id == shop["pro"] and user.balance == 300

    # Deleted (t0+40) arrives before an update stamped t0+30: the subscription stays ended.
    send_stripe(client, stripe_api.subscription_changed(sub, "canceled", t0 + 40, "customer.subscription.deleted"))
    send_stripe(client, stripe_api.subscription_changed(sub, "active", t0 + 30))
    user = _user(app, shop["user"])
    assert user.subscription_status == "canceled" and user.plan_id is None


def test_subscription_renews_only_at_the_price_and_currency_it_was_sold_at(app, client, shop, stripe_api):
    sub = _subscribe(app, client, shop, stripe_api, created=int(time.time()))
    assert send_stripe(client, stripe_api.invoice_paid(sub)).get_json()["status"] == "applied"
    both = stripe_api.invoice_paid(sub, event_type="invoice.paid")  # Stripe sends both for one invoice
    both["data"]["object"]["id"] = _rows(app, Payment)[0].external_id
    assert send_stripe(client, both).get_json()["status"] == "duplicate"
    cheaper = send_stripe(client, stripe_api.invoice_paid(sub, amount_paid=900))
    other_currency = send_stripe(client, stripe_api.invoice_paid(sub, currency="eur"))
    assert cheaper.get_json()["status"] == other_currency.get_json()["status"] == "review"
    assert _user(app, shop["user"]).balance == 300
    paid, *reviews = _rows(app, Payment)
    assert (paid.status, paid.credits, paid.amount) == ("succeeded", 300, 1900)
    assert [r.review_reason for r in reviews] == ["renewed at 9.00 USD; the order is 19.00 USD",
                                                  "renewed at 19.00 EUR; the order is 19.00 USD"]
    assert all(r.status == "review" and r.credits == 0 and r.user_id == shop["user"] for r in reviews)


def test_refund_takes_back_credits_never_below_zero_and_flags_the_shortfall(app, client, shop, stripe_api):
    login(client, shop["buyer"])
    session_id = start_stripe(client, shop["pack"])
    paid = stripe_api.complete(session_id)
    send_stripe(client, paid)
    with app.app_context():
        from app.services import credits

        credits.debit(shop["user"], 45, reason="spent on jobs")
        db.session.commit()
    intent = paid["data"]["object"]["payment_intent"]
    refund = StripeAPIServer.event("charge.refunded", {"id": "ch_1", "object": "charge", "payment_intent": intent,
                                                       "amount_refunded": 500, "currency": "usd"})
    for _ in range(3):
        assert send_stripe(client, refund).status_code == 200
    user = _user(app, shop["user"])
    assert user.balance == 0 and user.credit_shortfall == 45
    payment, = _rows(app, Payment)
    assert payment.status == "refunded" and payment.refunded_credits == 50
    with app.app_context():
        assert p.ledger_sum(shop["user"]) == 0
    # A late replay of the original payment never credits a refunded payment again.
    assert send_stripe(client, stripe_api.complete(session_id)).get_json()["status"] == "duplicate"
    assert _user(app, shop["user"]).balance == 0


def test_hidden_plans_are_sold_only_to_users_an_admin_assigned_them_to(app, client, shop, stripe_api, paypal_api):
    login(client, shop["buyer"])
    assert "Acme" not in client.get("/pricing").get_data(as_text=True)
    assert checkout(client, shop["acme"]).status_code == 404
    assert checkout(client, shop["bulk"], "paypal").status_code == 404
    assert checkout(client, 999999).status_code == 404
    assert stripe_api.requests == [] and paypal_api.requests == [] and _count(app, Order) == 0

    with app.app_context():
        db.session.get(User, shop["user"]).plan_id = shop["bulk"]  # what Users → edit → plan does
        db.session.commit()
    html = client.get("/pricing").get_data(as_text=True)
    assert "Acme bulk" in html and "Pay with PayPal" in html and "Acme</h3>" not in html
    start_paypal(client, shop["bulk"])
    assert last_order(app).plan_id == shop["bulk"]
    assert checkout(client, shop["acme"]).status_code == 404  # assigned one hidden plan, not every one


# --- PayPal ---


def test_paypal_order_is_created_on_our_server_captured_on_return_and_credited_once(app, client, shop, paypal_api):
    login(client, shop["buyer"])
    html = client.get("/pricing").get_data(as_text=True)
    assert html.count("Pay with PayPal") == 1  # packs only: PayPal Orders are one-time payments
    paypal_order = start_paypal(client, shop["pack"])
    order = last_order(app)
    assert (order.gateway, order.status, order.gateway_reference, order.amount) == ("paypal", "pending",
                                                                                  paypal_order, 500)
    assert paypal_api.paths() == ["/v1/oauth2/token", "/v2/checkout/orders"]
    created = json.loads(paypal_api.requests[1]["raw"])
    assert created["intent"] == "CAPTURE"
    unit, = created["purchase_units"]
    assert unit["custom_id"] == str(order.id) and unit["amount"] == {"currency_code": "USD", "value": "5.00"}
    assert paypal_api.requests[1]["headers"]["paypal-request-id"] == f"neurapix-order-{order.id}"

    resp = client.get(paypal_api.approve(paypal_order))
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/account")
    assert "credits are in your balance" in client.get("/account").get_data(as_text=True)
    assert _user(app, shop["user"]).balance == 50
    assert paypal_api.paths()[-1] == f"/v2/checkout/orders/{paypal_order}/capture"
    payment, = _rows(app, Payment)
    capture_id = paypal_api.orders[paypal_order]["capture_id"]
    assert (payment.status, payment.external_id, payment.order_id, payment.credits) == ("succeeded", capture_id,
                                                                                      order.id, 50)
    assert last_order(app).status == "paid"

    # PayPal's webhook for the same capture, and the buyer reloading the return page: nothing more.
    event = paypal_api.capture_completed_event(paypal_order)
    assert send_paypal(client, event, PAYPAL_TRANSMISSION_SIG="forged").status_code == 400
    assert send_paypal(client, event).get_json()["status"] == "duplicate"
    verify = json.loads(paypal_api.requests[-1]["raw"])
    assert verify["webhook_id"] == "WH-123" and verify["transmission_id"] == "tx-1"
    assert verify["auth_algo"] == "SHA256withRSA" and verify["webhook_event"]["id"] == event["id"]
    captures = paypal_api.paths().count(f"/v2/checkout/orders/{paypal_order}/capture")
    assert client.get(paypal_api.return_url(paypal_order)).status_code == 302
    assert paypal_api.paths().count(f"/v2/checkout/orders/{paypal_order}/capture") == captures == 1
    assert _user(app, shop["user"]).balance == 50 and _count(app, CreditLedger) == 1

    refund = {"id": "WH-REFUND-1", "event_type": "PAYMENT.CAPTURE.REFUNDED", "resource_type": "refund", "resource": {
        "id": "REF-1", "status": "COMPLETED", "amount": {"currency_code": "USD", "value": "5.00"},
        "links": [{"rel": "up", "href": f"https://api.paypal.com/v2/payments/captures/{capture_id}"}]}}
    assert send_paypal(client, refund).get_json()["status"] == "applied"
    assert send_paypal(client, refund).get_json()["status"] == "duplicate"
    assert _user(app, shop["user"]).balance == 0 and _rows(app, Payment)[0].status == "refunded"


def test_a_return_from_paypal_for_someone_elses_order_is_404(app, client, shop, paypal_api):
    login(client, shop["buyer"])
    paypal_order = start_paypal(client, shop["pack"])
    return_url = paypal_api.approve(paypal_order)
    with app.app_context():
        login(client, make_user("customer"))
    assert client.get(return_url).status_code == 404
    login(client, shop["buyer"])
    assert client.get(return_url.replace(paypal_order, "SOMEOTHERORDER")).status_code == 404
    assert paypal_api.paths().count(f"/v2/checkout/orders/{paypal_order}/capture") == 0


def test_capture_return_and_webhook_racing_credit_each_order_once(app, shop, paypal_api):
    buyer = app.test_client()
    login(buyer, shop["buyer"])
    rounds = 4
    for _ in range(rounds):
        paypal_order = start_paypal(buyer, shop["pack"])
        return_url = paypal_api.approve(paypal_order)
        event = paypal_api.capture_completed_event(paypal_order)
        start = threading.Barrier(2)
        answers = {}

        def buyer_returns():
            browser = app.test_client()
            login(browser, shop["buyer"])
            start.wait()
            answers["return"] = browser.get(return_url).status_code

        def paypal_notifies():
            start.wait()
            answers["webhook"] = send_paypal(app.test_client(), event).get_json()["status"]

        threads = [threading.Thread(target=buyer_returns), threading.Thread(target=paypal_notifies)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answers["return"] == 302 and answers["webhook"] in ("applied", "duplicate")
    assert _user(app, shop["user"]).balance == 50 * rounds
    assert _count(app, Payment, Payment.status == "succeeded") == rounds and _count(app, Payment) == rounds
    assert _count(app, CreditLedger, CreditLedger.kind == "purchase") == rounds
    assert {o.status for o in _rows(app, Order)} == {"paid"}


def _order_row(app, shop, plan, gateway="paypal", reference="PAYPALORDER1"):
    """A pending order as start_checkout writes it (the forged captures below name it)."""
    with app.app_context():
        plan = db.session.get(Plan, shop[plan])
        order = Order(user_id=shop["user"], plan_id=plan.id, plan_name=plan.name, plan_kind=plan.kind,
                      gateway=gateway, amount=plan.price, currency=plan.currency, credits=plan.credits,
                      gateway_reference=reference)
        db.session.add(order)
        db.session.commit()
        return order.id


def _capture(custom_id, value, currency="USD", paypal_order="PAYPALORDER1", event_id="WH-FORGED-1"):
    return {"id": event_id, "event_type": "PAYMENT.CAPTURE.COMPLETED", "resource_type": "capture", "resource": {
        "id": f"CAPTURE-{event_id}", "status": "COMPLETED", "amount": {"currency_code": currency, "value": value},
        "custom_id": custom_id, "final_capture": True,
        "supplementary_data": {"related_ids": {"order_id": paypal_order}}}}


FORGED = {
    "wrong-amount": (lambda o, s: _capture(str(o), "0.01"), "paid 0.01 USD; the order is 5.00 USD"),
    "wrong-currency": (lambda o, s: _capture(str(o), "5.00", "JPY"), "paid 5.00 JPY; the order is 5.00 USD"),
    "sub-cent-amount": (lambda o, s: _capture(str(o), "5.001"), "paid 5.001 USD; the order is 5.00 USD"),
    "hidden-plan-in-custom-id": (lambda o, s: _capture(f"{s['user']}:{s['bulk']}", "0.01", "JPY"),
                                 "names no order of ours"),
    "unknown-order": (lambda o, s: _capture("424242", "5.00"), "names no order of ours (reference '424242')"),
    "another-paypal-order": (lambda o, s: _capture(str(o), "5.00", paypal_order="SOMEONEELSES"),
                             "belongs to checkout 'SOMEONEELSES'"),
}


@pytest.mark.parametrize("case", list(FORGED))
def test_forged_paypal_capture_credits_nothing_and_needs_review(app, client, shop, paypal_api, case):
    make_event, reason = FORGED[case]
    order_id = _order_row(app, shop, "pack")
    resp = send_paypal(client, make_event(order_id, shop))
    assert resp.status_code == 200 and resp.get_json()["status"] == "review"
    assert paypal_api.paths()[-1] == "/v1/notifications/verify-webhook-signature"  # genuinely from PayPal
    assert _user(app, shop["user"]).balance == 0 and _count(app, CreditLedger) == 0
    payment, = _rows(app, Payment)
    assert payment.status == "review" and reason in payment.review_reason and payment.credits == 0
    assert last_order(app).status == "pending"


def test_paypal_capture_for_a_stripe_order_or_an_unassigned_hidden_plan_needs_review(app, client, shop, paypal_api):
    stripe_order = _order_row(app, shop, "pack", gateway="stripe", reference="cs_test_1")
    send_paypal(client, _capture(str(stripe_order), "5.00", paypal_order="cs_test_1"))
    with app.app_context():
        db.session.get(User, shop["user"]).plan_id = shop["bulk"]
        db.session.commit()
    hidden_order = _order_row(app, shop, "bulk", reference="PAYPALHIDDEN")
    with app.app_context():
        db.session.get(User, shop["user"]).plan_id = None  # the admin took the assignment back
        db.session.commit()
    send_paypal(client, _capture(str(hidden_order), "500.00", paypal_order="PAYPALHIDDEN", event_id="WH-2"))
    assert _user(app, shop["user"]).balance == 0
    assert [p.review_reason for p in _rows(app, Payment)] == [
        f"order #{stripe_order} was placed with stripe, not paypal",
        "plan 'Acme bulk' is hidden and not assigned to this user"]


JUNK = {
    "header-missing": ({"PAYPAL_TRANSMISSION_SIG": None}, 400),
    "cert-on-another-host": ({"PAYPAL_CERT_URL": "https://evil.example.com/v1/notifications/certs/X"}, 400),
    "cert-lookalike-host": ({"PAYPAL_CERT_URL": "https://api.paypal.com.evil.io/certs/X"}, 400),
    "cert-over-http": ({"PAYPAL_CERT_URL": "http://api.paypal.com/v1/notifications/certs/X"}, 400),
    "cert-odd-port": ({"PAYPAL_CERT_URL": "https://api.paypal.com:8443/certs/X"}, 400),
    "cert-with-userinfo": ({"PAYPAL_CERT_URL": "https://api.paypal.com@evil.io/certs/X"}, 400),
    "event-we-do-not-handle": ({"event_type": "CHECKOUT.ORDER.APPROVED"}, 200),
    "no-event-id": ({"id": ""}, 400),
    "not-json": ({"body": "{not json"}, 400),
    "webhook-id-not-configured": ({"webhook_id": ""}, 400),
}


@pytest.mark.parametrize("case", list(JUNK))
def test_junk_paypal_webhooks_are_refused_before_any_call_to_paypal(app, client, shop, paypal_api, case):
    changes, status = JUNK[case]
    changes = dict(changes)
    event = _capture("1", "5.00")
    if "webhook_id" in changes:
        configure(app, paypal_webhook_id=changes.pop("webhook_id"))
    for field in ("event_type", "id"):
        if field in changes:
            event[field] = changes.pop(field)
    body = changes.pop("body", event)
    assert send_paypal(client, body, **changes).status_code == status
    assert paypal_api.requests == []  # no OAuth token, no verification call
    assert _count(app, WebhookEvent) == 0 and _count(app, Payment) == 0


def test_a_well_formed_paypal_webhook_costs_exactly_the_two_verification_calls(app, client, shop, paypal_api):
    send_paypal(client, _capture("424242", "5.00"))
    assert paypal_api.paths() == ["/v1/oauth2/token", "/v1/notifications/verify-webhook-signature"]


# --- one payment path ---


def _imports(path):
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):  # "from app.services import payments" → app.services.payments
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_the_site_reaches_gateways_only_through_the_payments_service():
    from pathlib import Path

    import app as package

    root = Path(package.__file__).parent
    for path in [*root.joinpath("site").glob("*.py"), *root.joinpath("webhooks").glob("*.py")]:
        assert not {m for m in _imports(path) if m in ("stripe", "requests") or m.startswith("app.payments")}, path
    # Gateways sit below the service: they know settings and the event type, never the service or the site.
    for path in root.joinpath("payments").glob("*.py"):
        ours = {m for m in _imports(path) if m.startswith("app.") and m != "app.services"}
        allowed = ("app.payments", "app.services.settings", "app.services.payment_events")
        assert all(m.startswith(allowed) for m in ours), (path, ours)


# --- gateway hosts and the admin's view of it all ---


def test_a_settings_save_cannot_redirect_gateway_keys(app, client, shop, stripe_api, paypal_api):
    from app.services import settings

    assert not {"payments.stripe_api_base", "payments.paypal_api_base"} & set(settings.REGISTRY)
    with StripeAPIServer(secret_key="sk_test_contract") as attacker:
        with app.app_context():
            admin = make_user("admin")
            # A row an older version saved is ignored too (the migration deletes such rows).
            db.session.add(Setting(key="payments.stripe_api_base", value=attacker.url))
            db.session.commit()
        login(client, admin)
        page = client.get("/admin/settings/").get_data(as_text=True)
        assert "API base" not in page
        data = form_values(page, "site.name")
        data["payments.stripe_api_base"] = data["payments.paypal_api_base"] = attacker.url
        assert client.post("/admin/settings/", data=data).status_code in (200, 302)

        login(client, shop["buyer"])
        start_stripe(client, shop["pack"])
        start_paypal(client, shop["pack"])
        assert attacker.requests == []
    assert "/v1/checkout/sessions" in stripe_api.paths() and "/v2/checkout/orders" in paypal_api.paths()


def _filter_arg(app, endpoint, column, operation):
    view = next(v for v in app.extensions["neurapix_admin"]._views if getattr(v, "endpoint", None) == endpoint)
    index, flt = next((i, f) for i, f in enumerate(view._filters)
                      if f.column.key == column and str(f.operation()) == operation)
    return f"flt0_{view.get_filter_arg(index, flt)}"


@pytest.mark.parametrize("role", ["admin", "support", "viewer"])
def test_staff_see_orders_and_payments_needing_review_with_the_reason(app, client, shop, stripe_api, role):
    login(client, shop["buyer"])
    send_stripe(client, stripe_api.complete(start_stripe(client, shop["pack"]), amount_total=1))
    send_stripe(client, stripe_api.complete(start_stripe(client, shop["pack"])))
    stranger = stripe_api.complete(start_stripe(client, shop["pack"]), client_reference_id="7777", metadata={})
    send_stripe(client, stranger)  # names no order: a payment under review with no known buyer
    with app.app_context():
        login(client, make_user(role))
    status_filter = _filter_arg(app, "payments", "status", "equals")
    reason_filter = _filter_arg(app, "payments", "review_reason", "contains")
    for query in (f"{status_filter}=review", f"{reason_filter}=the+order+is"):
        html = client.get(f"/admin/payments/?{query}").get_data(as_text=True)
        assert "paid 0.01 USD; the order is 5.00 USD" in html and "succeeded" not in html
    assert "names no order of ours (reference &#39;7777&#39;)" in client.get(
        f"/admin/payments/?{status_filter}=review").get_data(as_text=True)
    stranger_payment = _rows(app, Payment, Payment.user_id.is_(None))[0]
    assert client.get(f"/admin/payments/details/?id={stranger_payment.id}").status_code == 200
    html = client.get("/admin/orders/").get_data(as_text=True)
    assert html.count("buyer@example.com") == 3 and "cs_test_" in html
    assert client.get("/admin/orders/new/").status_code == 403


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
