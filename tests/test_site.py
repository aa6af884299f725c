"""The customer site shows only what is enabled, hidden plans stay hidden, accounts show credits."""
import sqlalchemy as sa

from app.extensions import db
from app.models import AIFunction, CreditLedger, Job, Plan, Provider
from tests.helpers import login, make_user, post


def _catalog(app):
    with app.app_context():
        provider = Provider(key="local", name="Local", enabled=True, config={})
        db.session.add(provider)
        db.session.flush()
        for key, name, priority in (("enhance", "Enhance", 5), ("upscale", "Upscale", 9), ("hdr", "HDR", 1)):
            db.session.add(AIFunction(key=key, name=name, description=f"{name} it", enabled=True, priority=priority,
                                      provider_id=provider.id, price_per_use=2))
        db.session.commit()


def test_home_lists_enabled_functions_by_priority(app, client):
    _catalog(app)
    html = client.get("/").get_data(as_text=True)
    assert html.index("/f/upscale") < html.index("/f/enhance") < html.index("/f/hdr")
    assert "2</strong> credits per image" in html and "JPEG, PNG, WEBP" in html


def test_home_has_an_empty_state(client):
    assert "No tools are available right now" in client.get("/").get_data(as_text=True)


def test_function_disappears_when_disabled(app, client):
    _catalog(app)
    assert client.get("/f/hdr").status_code == 200
    with app.app_context():
        db.session.scalars(sa.select(AIFunction).where(AIFunction.key == "hdr")).one().enabled = False
        db.session.commit()
    assert client.get("/f/hdr").status_code == 404
    assert "/f/hdr" not in client.get("/").get_data(as_text=True)


def test_function_disappears_with_its_provider_disabled(app, client):
    _catalog(app)
    with app.app_context():
        db.session.scalars(sa.select(Provider)).one().enabled = False
        db.session.commit()
    assert client.get("/f/enhance").status_code == 404
    assert "No tools are available right now" in client.get("/").get_data(as_text=True)


def test_function_deleted_in_admin_disappears_and_its_jobs_stay(app, client):
    _catalog(app)
    with app.app_context():
        admin = make_user("admin")
        customer = make_user("customer")
        fn = db.session.scalars(sa.select(AIFunction).where(AIFunction.key == "hdr")).one()
        db.session.add(Job(user_id=customer.id, function_id=fn.id, function_key="hdr", provider_key="local",
                           status="done"))
        db.session.commit()
        fn_id = fn.id
    login(client, admin)
    resp = post(client, "/admin/functions/delete/", {"id": fn_id, "url": "/admin/functions/"})
    assert resp.status_code == 302
    assert client.get("/f/hdr").status_code == 404
    assert "/f/hdr" not in client.get("/").get_data(as_text=True)
    with app.app_context():
        job = db.session.scalars(sa.select(Job)).one()
        assert job.function_id is None and job.function_key == "hdr"


def test_pricing_lists_only_public_plans(app, client):
    with app.app_context():
        db.session.add_all([
            Plan(name="Starter", kind="pack", price=500, credits=50),
            Plan(name="Acme B2B", kind="monthly", price=99900, credits=100000, hidden=True),
        ])
        db.session.commit()
    html = client.get("/pricing").get_data(as_text=True)
    assert "Starter" in html and "5.00 USD" in html
    assert "Acme B2B" not in html


def test_account_needs_login(client):
    resp = client.get("/account")
    assert resp.status_code == 302 and "/login?next=" in resp.headers["Location"]


def test_account_shows_balance_and_ledger(app, client):
    with app.app_context():
        user = make_user("customer", balance=7)
        db.session.add(CreditLedger(user_id=user.id, amount=7, balance_after=7, kind="grant", reason="Welcome bonus"))
        db.session.commit()
    login(client, user)
    html = client.get("/account").get_data(as_text=True)
    assert "7 credits" in html and "Welcome bonus" in html and "+7" in html


def test_static_assets_are_served_locally(client):
    html = client.get("/").get_data(as_text=True)
    assert "/static/vendor/pico/pico.min.css" in html and "://cdn" not in html
    assert client.get("/static/vendor/pico/pico.min.css").status_code == 200


def test_account_history_is_paginated(app, client):
    from app.services import credits

    with app.app_context():
        user = make_user("customer")
        for i in range(25):
            credits.grant(user.id, 1, kind="grant", reason=f"bonus {i}")
        db.session.commit()
    login(client, user)
    first = client.get("/account").get_data(as_text=True)
    assert "Page 1 of 2" in first and "/account?page=2" in first and "bonus 24" in first
    second = client.get("/account?page=2").get_data(as_text=True)
    assert "Page 2 of 2" in second and "bonus 0" in second
