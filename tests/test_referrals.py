"""Referrals: the /?ref=CODE link is kept through sign-up; the new customer is rewarded once on verification, both
sides once on the referred customer's first paid order only; self-referral and the same-domain limit earn nothing."""
from decimal import Decimal

import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, CreditLedger, Order, User
from app.services import payment_events as events
from app.services import payments, referrals, settings
from tests import pipeline as p
from tests.helpers import flashes, login, make_user, post
from tests.mail_server import SmtpServer

PASSWORD = "correct-horse-battery"


def _code(app, user_id):
    with app.app_context():
        return referrals.issue_code(db.session.get(User, user_id))


def _sign_up_via(app, code, email):
    visitor = app.test_client()
    assert visitor.get(f"/?ref={code.lower()}").status_code == 200
    resp = post(visitor, "/signup", {"email": email, "password": PASSWORD, "confirm": PASSWORD})
    assert resp.status_code == 302, flashes(resp.get_data(as_text=True))
    with app.app_context():
        user = db.session.scalars(sa.select(User).where(User.email == email)).one()
        db.session.expunge(user)
        return user, visitor


def _referral_credits(app, user_id):
    with app.app_context():
        return db.session.scalars(sa.select(CreditLedger.amount).where(
            CreditLedger.user_id == user_id, CreditLedger.reason.like("Referral%")).order_by(CreditLedger.id)).all()


def _pay(app, user_id, event_id):
    with app.app_context():
        order = Order(user_id=user_id, plan_name="Starter", gateway="stripe", amount=500, currency="USD", credits=50)
        db.session.add(order)
        db.session.commit()
        paid = events.PaymentEvent(provider="stripe", event_id=event_id, source_type="checkout.session.completed",
                                   kind=events.ORDER_PAID, order_ref=str(order.id), external_id=f"pi_{event_id}",
                                   paid=True, amount=Decimal("5.00"), currency="USD")
        assert payments.apply(paid) == "applied"


def test_the_referral_link_survives_sign_up_and_rewards_each_once(app):
    with app.app_context():
        referrer = make_user("customer", email="ann@example.com")
    code = _code(app, referrer.id)
    with SmtpServer() as smtp:
        with app.app_context():
            settings.update(smtp.settings())
        friend, visitor = _sign_up_via(app, code, "bob@another.org")
        assert friend.referred_by_id == referrer.id and friend.referral_code  # every new customer has one
        p.drain(app)
        link = smtp.link(smtp.to("bob@another.org")[0], "/verify-email/")
        visitor.get(link)
        visitor.get(link)
    assert _referral_credits(app, friend.id) == [10]

    _pay(app, friend.id, "evt_first")
    _pay(app, friend.id, "evt_second")  # a second order rewards nobody
    assert _referral_credits(app, friend.id) == [10, 20]
    assert _referral_credits(app, referrer.id) == [50]


def test_only_the_first_paid_order_counts(app):
    with app.app_context():
        referrer = make_user("customer")
        friend = make_user("customer", email="carl@third.org")
        settings.update({"customers.referral_referrer_credits": 0})
    _pay(app, friend.id, "evt_before")  # paid before the referral was known: it is still their first order
    with app.app_context():
        db.session.execute(sa.update(User).where(User.id == friend.id).values(referred_by_id=referrer.id))
        db.session.commit()
        settings.update({"customers.referral_referrer_credits": 50})
    _pay(app, friend.id, "evt_later")
    assert _referral_credits(app, referrer.id) == [] and _referral_credits(app, friend.id) == []


def test_self_referral_with_a_tagged_address_earns_nothing(app):
    with app.app_context():
        me = make_user("customer", email="dana@example.com")
    code = _code(app, me.id)
    alias, _visitor = _sign_up_via(app, code, "d.ana+promo@example.com")
    assert alias.referred_by_id is None
    with app.app_context():
        assert db.session.scalars(sa.select(AuditLog.new_values).where(AuditLog.action == "referral_refused")
                                  ).one()["reason"] == "self-referral"


def test_sign_ups_sharing_a_domain_are_limited_per_day(app):
    with app.app_context():
        referrer = make_user("customer", email="eve@example.com")
        settings.update({"customers.referral_same_domain_daily": 2})
    code = _code(app, referrer.id)
    signed = [_sign_up_via(app, code, f"user{i}@burner.net")[0] for i in range(3)]
    other_domain, _ = _sign_up_via(app, code, "someone@elsewhere.org")
    assert [u.referred_by_id for u in signed] == [referrer.id, referrer.id, None]
    assert other_domain.referred_by_id == referrer.id


def test_the_admin_sees_referrals_per_user_and_customers_see_their_link(app, client):
    with app.app_context():
        referrer = make_user("customer", email="fay@example.com")
        admin = make_user("admin")
    login(client, referrer)
    # An account from before referrals: reading /account writes nothing, a button makes the code.
    assert "Get my link" in client.get("/account").get_data(as_text=True)
    assert post(client, "/account/referral-link").status_code == 302
    page = client.get("/account").get_data(as_text=True)
    code = _code(app, referrer.id)
    assert f"/?ref={code}" in page
    friend, _ = _sign_up_via(app, code, "gus@fourth.org")
    staff = app.test_client()
    login(staff, admin)
    details = staff.get(f"/admin/users/details/?id={referrer.id}").get_data(as_text=True)
    assert "Referred 1 customer(s)" in details and "gus@fourth.org" in details
    dashboard = staff.get("/admin/").get_data(as_text=True)
    assert "Top referrers" in dashboard and "fay@example.com</a></td><td>1</td>" in dashboard
