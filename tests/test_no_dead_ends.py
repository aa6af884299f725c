"""A customer never hits a dead end: every purchasable plan has a buy button, staff are told when payments are
not set up, and running short of credits links straight to a plan that covers the function."""
import io

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Order, Plan
from app.services import settings
from tests import pipeline as p
from tests.helpers import csrf_token, login, make_user, post
from tests.images import image_bytes
from tests.payment_servers import StripeAPIServer


@pytest.fixture
def stripe_api(app, monkeypatch):
    with StripeAPIServer() as server:
        monkeypatch.setitem(app.config, "STRIPE_API_BASE", server.url)
        with app.app_context():
            settings.update({"payments.stripe_secret_key": server.secret_key})
        yield server


def _plans():
    small = Plan(name="Small", kind="pack", price=500, credits=2)
    big = Plan(name="Big", kind="pack", price=900, credits=50)
    monthly = Plan(name="Monthly", kind="monthly", price=1900, credits=300)
    db.session.add_all([small, big, monthly])
    db.session.commit()
    return small, big, monthly


def test_without_a_gateway_staff_are_told_and_customers_are_not(app, client):
    with app.app_context():
        _plans()
        admin, customer = make_user("admin"), make_user("customer")
    login(client, admin)
    assert "Payments are not set up yet" in client.get("/pricing").get_data(as_text=True)
    other = app.test_client()
    login(other, customer)
    page = other.get("/pricing").get_data(as_text=True)
    assert "Payments are not set up yet" not in page and 'name="gateway"' not in page


def test_with_stripe_every_plan_has_a_buy_button_and_sells_at_our_price(app, client, stripe_api):
    stripe_server = stripe_api
    with app.app_context():
        small, big, monthly = _plans()
        customer = make_user("customer")
        login(client, customer)
        page = client.get("/pricing").get_data(as_text=True)
        assert page.count('name="gateway" value="stripe"') == 3
        resp = post(client, f"/checkout/{monthly.id}", {"gateway": "stripe"})
        assert resp.status_code == 303
        form = stripe_server.form(-1)
        assert form["line_items[0][price_data][unit_amount]"] == "1900"
        assert form["line_items[0][price_data][recurring][interval]"] == "month"
        order = db.session.scalars(sa.select(Order)).one()
        assert (order.amount, order.gateway) == (1900, "stripe")


def test_short_of_credits_the_function_page_links_to_the_plan_that_covers_it(app, client, stripe_api):
    with app.app_context():
        small, big, _monthly = _plans()
        fn = p.local_function(price_per_use=5)
        customer = p.funded_customer(1)
        login(client, customer)
        resp = client.post(f"/f/{fn.key}", data={"csrf_token": csrf_token(client),
                                                 "image": (io.BytesIO(image_bytes()), "photo.png")},
                           content_type="multipart/form-data")
        page = resp.get_data(as_text=True)
        assert resp.status_code == 402
        # "Small" brings 2 credits, too few for a 5-credit function: the cheapest plan that covers it is "Big".
        assert f'href="/pricing?plan={big.id}#plan-{big.id}"' in page and "Buy Big" in page
        assert f'id="plan-{big.id}"' in client.get(f"/pricing?plan={big.id}").get_data(as_text=True)
