"""Coupons: credits codes redeemed once per customer within their limits (also under 20 concurrent redemptions),
percent-off codes priced into the server-side order and honoured by the paid-amount check, and the admin's bulk
generation and CSV export."""
import csv
import io
import threading
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Coupon, CouponRedemption, CreditLedger, Order, Plan, User
from app.services import coupons, payments, settings
from tests.helpers import login, make_user, post
from tests.payment_servers import StripeAPIServer


def _coupon(**fields):
    values = dict(code="WELCOME5", kind="credits", credits=5, max_uses=None, enabled=True)
    values.update(fields)
    coupon = Coupon(**values)
    db.session.add(coupon)
    db.session.commit()
    return coupon


def _balance(app, user_id):
    with app.app_context():
        return db.session.scalar(sa.select(User.balance).where(User.id == user_id))


def test_a_customer_redeems_a_credits_code_once(app, client):
    with app.app_context():
        _coupon()
        user = make_user("customer")
    login(client, user)
    first = post(client, "/account/redeem", {"code": " welcome5 "}, follow_redirects=True)
    assert "5 credits were added" in first.get_data(as_text=True)
    again = post(client, "/account/redeem", {"code": "WELCOME5"}, follow_redirects=True)
    assert "already used this code" in again.get_data(as_text=True)
    assert _balance(app, user.id) == 5
    with app.app_context():
        assert db.session.scalar(sa.select(Coupon.uses)) == 1
        assert db.session.scalar(sa.select(sa.func.count()).select_from(CreditLedger)) == 1


@pytest.mark.parametrize("fields,message", [
    ({"enabled": False}, "not valid"),
    ({"expires_at": datetime.now(timezone.utc) - timedelta(days=1)}, "expired"),
    ({"max_uses": 1, "uses": 1}, "used up"),
    ({"kind": "percent", "credits": 0, "percent_off": 20}, "pricing page"),
])
def test_unusable_codes_are_refused_and_change_nothing(app, client, fields, message):
    with app.app_context():
        _coupon(**fields)
        user = make_user("customer")
    login(client, user)
    page = post(client, "/account/redeem", {"code": "WELCOME5"}, follow_redirects=True).get_data(as_text=True)
    assert message in page and _balance(app, user.id) == 0
    assert post(client, "/account/redeem", {"code": "NOPE"}, follow_redirects=True).status_code == 200


def test_twenty_concurrent_redemptions_of_a_five_use_code_grant_exactly_five(app):
    with app.app_context():
        coupon_id = _coupon(max_uses=5).id
        users = [make_user("customer") for _ in range(20)]
    barrier = threading.Barrier(20)
    outcomes = []

    def redeem(user):
        with app.app_context():
            barrier.wait()
            try:
                coupons.redeem(db.session.get(User, user.id), "WELCOME5")
                outcomes.append("ok")
            except coupons.CouponError as exc:
                outcomes.append(str(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=redeem, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes.count("ok") == 5 and len(outcomes) == 20
    with app.app_context():
        assert db.session.get(Coupon, coupon_id).uses == 5
        assert db.session.scalar(sa.select(sa.func.count()).select_from(CouponRedemption)) == 5
        assert db.session.scalar(sa.select(sa.func.sum(User.balance))) == 25


def test_one_customer_redeeming_concurrently_gets_the_credits_once(app):
    with app.app_context():
        _coupon()
        user = make_user("customer")
    barrier = threading.Barrier(8)
    outcomes = []

    def redeem():
        with app.app_context():
            barrier.wait()
            try:
                coupons.redeem(db.session.get(User, user.id), "WELCOME5")
                outcomes.append("ok")
            except coupons.CouponError:
                outcomes.append("refused")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=redeem) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes.count("ok") == 1 and _balance(app, user.id) == 5


@pytest.fixture
def stripe_api(app, monkeypatch):
    with StripeAPIServer() as server:
        monkeypatch.setitem(app.config, "STRIPE_API_BASE", server.url)
        with app.app_context():
            settings.update({"payments.stripe_secret_key": server.secret_key,
                             "payments.stripe_webhook_secret": "whsec_test"})
        yield server


def test_percent_off_reaches_the_order_stripe_and_the_paid_amount_check(app, client, stripe_api):
    from app.services import payment_events as events

    with app.app_context():
        plan = Plan(name="Starter", kind="pack", price=999, credits=100, stripe_price_id=None)
        db.session.add(plan)
        db.session.commit()
        _coupon(code="SPRING25", kind="percent", credits=0, percent_off=25, plan_id=plan.id, max_uses=1)
        user, other = make_user("customer"), make_user("customer")
        plan_id = plan.id
    login(client, user)
    resp = post(client, f"/checkout/{plan_id}", {"gateway": "stripe", "coupon": "spring25"})
    assert resp.status_code == 303
    form = stripe_api.form(-1)
    assert form["line_items[0][price_data][unit_amount]"] == "999" and form["discounts[0][coupon]"].startswith("co_")
    (created,) = stripe_api.coupons.values()
    assert created["percent_off"] == 25
    session_id = next(iter(stripe_api.sessions))
    assert stripe_api.sessions[session_id]["amount_total"] == 749  # 999 − 249.75 rounded
    with app.app_context():
        order = db.session.scalars(sa.select(Order)).one()
        assert (order.amount, order.coupon_id is not None) == (749, True)
        # Paid at the discounted price: credited, and the code's use counted.
        paid = events.PaymentEvent(provider="stripe", event_id="evt_ok", source_type="checkout.session.completed",
                                   kind=events.ORDER_PAID, order_ref=str(order.id), checkout_id=session_id,
                                   external_id="pi_ok", paid=True, amount=events.from_minor(749), currency="USD")
        assert payments.apply(paid) == "applied"
        assert db.session.get(User, user.id).balance == 100
        assert db.session.scalar(sa.select(Coupon.uses)) == 1
    # The one use is spent: the next buyer pays full price or is told why.
    other_client = app.test_client()
    login(other_client, other)
    refused = post(other_client, f"/checkout/{plan_id}", {"gateway": "stripe", "coupon": "SPRING25"},
                   follow_redirects=True)
    assert "used up" in refused.get_data(as_text=True)


def test_a_payment_below_the_discounted_order_goes_to_review(app, stripe_api):
    from app.services import payment_events as events

    with app.app_context():
        plan = Plan(name="Starter", kind="pack", price=1000, credits=100)
        db.session.add(plan)
        db.session.commit()
        _coupon(code="HALF", kind="percent", credits=0, percent_off=50)
        user = make_user("customer")
        with app.test_request_context():
            payments.start_checkout(db.session.get(User, user.id), plan, "stripe", "HALF")
        order = db.session.scalars(sa.select(Order)).one()
        assert order.amount == 500
        cheap = events.PaymentEvent(provider="stripe", event_id="evt_low", source_type="checkout.session.completed",
                                    kind=events.ORDER_PAID, order_ref=str(order.id), external_id="pi_low", paid=True,
                                    amount=events.from_minor(250), currency="USD")
        assert payments.apply(cheap) == "review"
        assert db.session.get(User, user.id).balance == 0


def test_a_percent_code_for_another_plan_is_refused_at_checkout(app, client, stripe_api):
    with app.app_context():
        starter = Plan(name="Starter", kind="pack", price=1000, credits=100)
        pro = Plan(name="Pro", kind="pack", price=3000, credits=400)
        db.session.add_all([starter, pro])
        db.session.commit()
        _coupon(code="PROONLY", kind="percent", credits=0, percent_off=10, plan_id=pro.id)
        user = make_user("customer")
        starter_id = starter.id
    login(client, user)
    page = post(client, f"/checkout/{starter_id}", {"gateway": "stripe", "coupon": "PROONLY"},
                follow_redirects=True).get_data(as_text=True)
    assert "for the Pro plan only" in page
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Order)) == 0


def test_an_admin_generates_a_thousand_codes_and_exports_them_safely(app, client):
    with app.app_context():
        admin, support = make_user("admin"), make_user("support")
    login(client, admin)
    resp = post(client, "/admin/coupons/generate", {"count": "1000", "prefix": "=SPRING", "kind": "credits",
                                                     "credits": "10", "max_uses": "1"})
    assert resp.status_code == 400  # a prefix that is not letters, digits or dashes
    resp = post(client, "/admin/coupons/generate", {"count": "1000", "prefix": "spring-", "kind": "credits",
                                                     "credits": "10", "max_uses": "1"})
    assert resp.status_code == 302
    with app.app_context():
        codes = db.session.scalars(sa.select(Coupon.code)).all()
        batch = db.session.scalar(sa.select(Coupon.batch).limit(1))
    assert len(set(codes)) == 1000 and all(c.startswith("SPRING-") and len(c) == 15 for c in codes)
    assert post(client, "/admin/coupons/generate", {"count": "1001", "kind": "credits", "credits": "1"}).status_code == 400
    exported = client.get(f"/admin/coupons/export-codes?batch={batch}")
    rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True))))
    assert rows[0][0] == "code" and len(rows) == 1001 and {r[0] for r in rows[1:]} == set(codes)
    other = app.test_client()
    login(other, support)
    assert other.get("/admin/coupons/export-codes").status_code == 403
    assert post(other, "/admin/coupons/generate", {"count": "1", "kind": "credits", "credits": "1"}).status_code == 403


def test_the_admin_form_refuses_a_credits_code_without_credits(app, client):
    with app.app_context():
        admin = make_user("admin")
    login(client, admin)
    resp = post(client, "/admin/coupons/new/", {"code": "EMPTY", "kind": "credits", "credits": "0",
                                                "percent_off": "0", "enabled": "y"})
    assert "needs a number of credits above 0" in resp.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Coupon)) == 0
