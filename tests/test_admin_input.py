"""Admin robustness against hostile input: malformed ids, return URLs that leave our host, user text in form
descriptions, and a Host header that tries to poison absolute links."""
import pytest
import sqlalchemy as sa
from flask_admin.contrib.sqla import ModelView
from flask_wtf.csrf import generate_csrf
from werkzeug.datastructures import MultiDict

from app.extensions import db
from app.models import AIFunction, Page, Plan
from app.services import settings, urls
from tests import pipeline as p
from tests.factories import make_row
from tests.helpers import form_values, login, make_user, post
from tests.payment_servers import StripeAPIServer

MALFORMED = ["1,2", "abc", "1%2C2", "-1", "1.5", "9" * 40]


def _endpoints():
    from app import create_app

    admin = create_app("testing").extensions["neurapix_admin"]
    return [v.endpoint for v in admin._views if isinstance(v, ModelView)]


@pytest.mark.parametrize("endpoint", _endpoints())
def test_malformed_ids_answer_404_on_every_details_edit_and_delete(app, client, endpoint):
    view = next(v for v in app.extensions["neurapix_admin"]._views if getattr(v, "endpoint", None) == endpoint)
    with app.app_context():
        make_row(view.model)
        login(client, make_user("admin"))
    base = f"/admin/{endpoint}/"
    # A write the view does not offer stays an honest 403 (the role check comes first); never a 500.
    edit = 404 if "admin" in view.edit_roles else 403
    delete = 404 if "admin" in view.delete_roles else 403
    for bad in MALFORMED:
        assert client.get(f"{base}details/?id={bad}").status_code == 404, (endpoint, bad)
        assert client.get(f"{base}edit/?id={bad}").status_code == edit, (endpoint, bad)
        assert post(client, f"{base}delete/", {"id": bad, "url": base}).status_code == delete, (endpoint, bad)
    assert client.get(f"{base}details/?id=1&id=2").status_code == 404
    assert post(client, f"{base}action/", {"action": "delete", "rowid": ["1,2"], "url": base}).status_code in (403, 404)


def test_malformed_ids_in_bulk_actions_answer_404(app, client):
    with app.app_context():
        fn_id = p.local_function().id
        login(client, make_user("admin"))
    for bad in ("abc", "1,2"):
        resp = post(client, "/admin/functions/action/", {"action": "clone", "rowid": [str(fn_id), bad]})
        assert resp.status_code == 404
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AIFunction)) == 1


# --- return URLs ---

HOSTILE_RETURNS = ["http:/evil.example", "https:/evil.example", "//evil.example", "\\\\evil.example",
                   "/\\evil.example", "https://evil.example/admin/", "javascript:alert(1)", " //evil.example",
                   "/\t/evil.example", "http://user@evil.example"]


@pytest.mark.parametrize("target", HOSTILE_RETURNS)
def test_admin_return_urls_that_leave_our_host_fall_back_to_the_list(app, client, target):
    with app.app_context():
        plan = Plan(name="Starter", kind="pack", price=500, credits=50)
        db.session.add(plan)
        db.session.commit()
        login(client, make_user("admin"))
        plan_id = plan.id
    page = client.get("/admin/plans/edit/", query_string={"id": plan_id, "url": target}).get_data(as_text=True)
    assert "evil.example" not in page and "javascript:alert" not in page
    data = form_values(page)
    resp = client.post("/admin/plans/edit/", query_string={"id": plan_id, "url": target}, data=data)
    assert resp.status_code == 302 and resp.headers["Location"] == "/admin/plans/"
    data = {"id": plan_id, "url": target}
    resp = post(client, "/admin/plans/delete/", data)
    assert resp.status_code == 302 and resp.headers["Location"] == "/admin/plans/"


def test_admin_return_urls_on_our_host_are_kept(app, client):
    with app.app_context():
        plan = Plan(name="Starter", kind="pack", price=500, credits=50)
        db.session.add(plan)
        db.session.commit()
        login(client, make_user("admin"))
        plan_id = plan.id
    for target in ("/admin/plans/?page=1", "http://localhost/admin/plans/?sort=2"):
        data = form_values(client.get("/admin/plans/edit/", query_string={"id": plan_id, "url": target})
                           .get_data(as_text=True))
        resp = client.post("/admin/plans/edit/", query_string={"id": plan_id, "url": target}, data=data)
        assert resp.headers["Location"] == target


@pytest.mark.parametrize("target", HOSTILE_RETURNS)
def test_login_next_that_leaves_our_host_goes_to_the_default_page(app, client, target):
    with app.app_context():
        make_user("customer", email="next@example.com", password="correct-horse-battery")
    resp = post(client, "/login", {"email": "next@example.com", "password": "correct-horse-battery"},
                query_string={"next": target})
    assert resp.status_code == 302 and resp.headers["Location"] == "/account"


def test_login_next_on_our_host_is_followed(app, client):
    with app.app_context():
        make_user("customer", email="next@example.com", password="correct-horse-battery")
    resp = post(client, "/login", {"email": "next@example.com", "password": "correct-horse-battery"},
                query_string={"next": "/pricing?plan=2"})
    assert resp.headers["Location"] == "/pricing?plan=2"


@pytest.mark.parametrize("target,local", [
    ("/admin/", True), ("/", True), ("http://localhost/x", True), ("https://localhost/x", True),
    ("", False), (None, False), ("admin/", False), ("//localhost/x", False), ("http:/localhost/x", False),
    ("/\\evil", False), ("\\\\evil", False), ("/x\n", False), ("ftp://localhost/x", False),
])
def test_is_local_accepts_only_paths_and_our_own_host(app, target, local):
    with app.test_request_context(base_url="http://localhost"):
        assert urls.is_local(target) is local


# --- field descriptions ---

XSS = '<img src=x onerror="window.pwned=1">'


def test_user_text_in_admin_form_descriptions_is_escaped(app, client):
    with app.app_context():
        fn = p.local_function(key="enhance")
        provider = fn.provider
        provider.name = XSS
        fn.key = "x<b>bold</b>"
        db.session.commit()
        fn_id, provider_id = fn.id, provider.id
        login(client, make_user("admin"))
    function_page = client.get(f"/admin/functions/edit/?id={fn_id}").get_data(as_text=True)
    provider_page = client.get(f"/admin/providers/edit/?id={provider_id}").get_data(as_text=True)
    for page in (function_page, provider_page):
        assert XSS not in page and "<b>bold</b>" not in page
    assert "(from &lt;img src=x onerror=&#34;window.pwned=1&#34;&gt;)" in function_page
    assert "Used by: x&lt;b&gt;bold&lt;/b&gt;." in provider_page


# --- the Host header and the public URL ---

EVIL = {"Host": "evil.example"}


@pytest.fixture
def public_site(app):
    with app.app_context():
        p.local_function(key="enhance")
        db.session.add(Page(slug="about-us", title="About", html_content="<p>Hi</p>", is_published=True,
                            translations={"de": {"title": "Über uns"}}))
        db.session.commit()
        settings.update({"site.public_url": "https://www.neurapix.example"})


def test_the_sitemap_uses_the_public_url_whatever_the_host_header(client, public_site):
    xml = client.get("/sitemap.xml", headers=EVIL).get_data(as_text=True)
    assert "evil.example" not in xml
    assert "<loc>https://www.neurapix.example/</loc>" in xml
    assert "<loc>https://www.neurapix.example/f/enhance</loc>" in xml
    assert 'href="https://www.neurapix.example/about-us?lang=de"' in xml


def test_canonical_links_use_the_public_url_whatever_the_host_header(client, public_site):
    html = client.get("/about-us", headers=EVIL).get_data(as_text=True)
    assert "evil.example" not in html
    assert '<link rel="canonical" href="https://www.neurapix.example/about-us">' in html
    assert '<meta property="og:url" content="https://www.neurapix.example/about-us">' in html


def test_without_a_public_url_links_follow_the_request_host(client, app):
    with app.app_context():
        db.session.add(Page(slug="about-us", title="About", html_content="<p>Hi</p>", is_published=True))
        db.session.commit()
    html = client.get("/about-us").get_data(as_text=True)
    assert '<link rel="canonical" href="http://localhost/about-us">' in html


def test_gateway_return_urls_use_the_public_url_whatever_the_host_header(app, public_site, monkeypatch):
    evil = "http://evil.example"
    client = app.test_client()  # every request, cookies included, on the poisoned host
    with StripeAPIServer() as stripe_api:
        monkeypatch.setitem(app.config, "STRIPE_API_BASE", stripe_api.url)
        with app.app_context():
            settings.update({"payments.stripe_secret_key": "sk_test_contract"})
            plan = Plan(name="Pro", kind="monthly", price=1900, credits=300, stripe_price_id="price_pro")
            db.session.add(plan)
            db.session.commit()
            plan_id, user = plan.id, make_user("customer")
        with client.session_transaction(base_url=evil) as session:
            session["_user_id"], session["_fresh"] = user.get_id(), True
        with client:
            client.get("/account", base_url=evil)
            token = generate_csrf()
        resp = client.post(f"/checkout/{plan_id}", data={"csrf_token": token, "gateway": "stripe"}, base_url=evil)
        assert resp.status_code == 303, resp.headers.get("Location")
        assert client.post("/account/billing", data={"csrf_token": token}, base_url=evil).status_code == 303
        session, portal = stripe_api.form(1), stripe_api.form(2)
    assert session["success_url"] == "https://www.neurapix.example/account?paid=1"
    assert session["cancel_url"] == "https://www.neurapix.example/pricing"
    assert portal["return_url"] == "https://www.neurapix.example/account"


@pytest.mark.parametrize("value,error", [
    ("https://www.example.com/shop", "no path"),
    ("ftp://www.example.com", "starting with https://"),
    ("https://user@www.example.com", "no path"),
])
def test_the_public_url_must_be_a_bare_origin(app, value, error):
    with app.app_context():
        with pytest.raises(settings.SettingError, match=error):
            settings.parse_form(MultiDict({"site.public_url": value}))


def test_the_public_url_must_be_a_trusted_host_when_trusted_hosts_are_set(app, monkeypatch):
    monkeypatch.setitem(app.config, "TRUSTED_HOSTS", ["www.example.com"])
    with app.app_context():
        with pytest.raises(settings.SettingError, match="not in the server's TRUSTED_HOSTS"):
            settings.parse_form(MultiDict({"site.public_url": "https://shop.example.org"}))
        assert settings.parse_form(MultiDict({"site.public_url": "https://www.example.com/"}))["site.public_url"] == \
            "https://www.example.com"
