"""Runtime settings: typed and grouped in the admin, secrets encrypted and masked, only an admin saves,
every change audited, and every app instance sees a save on its next request without a restart."""
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from app import create_app
from app.admin.settings import SettingsView
from app.extensions import db
from app.models import AuditLog, Setting
from app.services import settings
from app.services.crypto import MASK
from tests import pipeline as p
from tests.helpers import flashes, form_values, login, make_user, post


def with_settings_view(instance):
    """The settings page on a fresh app: app/admin/__init__.py registers it; until it does, add it here
    (a view may only be added before the app serves its first request)."""
    admin = instance.extensions["neurapix_admin"]
    if not any(view.endpoint == "settings" for view in admin._views):
        admin.add_view(SettingsView(name="Settings", endpoint="settings"))
    return instance


@pytest.fixture(scope="module")
def web(app):
    """A second app instance on the same database, like another web server."""
    return with_settings_view(create_app("testing"))


def signed_in(instance, role):
    client = instance.test_client()
    with instance.app_context():
        login(client, make_user(role))
    return client


def save_settings(client, **changes):
    """The owner's action: open Settings, change fields (keys with dots as in the form), press Save."""
    page = client.get("/admin/settings/")
    assert page.status_code == 200
    data = form_values(page.get_data(as_text=True), "site.name")
    for key, value in changes.items():
        key = key.replace("__", ".", 1)
        if value is None:
            data.pop(key, None)  # an unticked checkbox
        else:
            data[key] = value
    return client.post("/admin/settings/", data=data)


def test_defaults_apply_until_the_owner_saves(web):
    with web.app_context():
        assert settings.get("site.name") == "Neurapix"
        assert settings.get("storage.backend") == "disk"
        assert settings.flag("signup") and not settings.flag("maintenance")
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Setting)) == 0


def test_admin_saves_typed_settings_and_each_change_is_audited_with_secrets_masked(web):
    owner = signed_in(web, "admin")
    resp = save_settings(owner, site__name="Pixel Forge", site__support_email="help@pixelforge.io",
                         storage__presign_seconds="600", payments__stripe_secret_key="sk_live_abcdefgh12345678")
    assert resp.status_code == 302, flashes(resp.get_data(as_text=True))
    with web.app_context():
        assert settings.get("site.name") == "Pixel Forge"
        assert settings.get("storage.presign_seconds") == 600  # typed, not "600"
        assert settings.get("payments.stripe_secret_key") == "sk_live_abcdefgh12345678"
        row = db.session.get(Setting, "payments.stripe_secret_key")
        assert row.is_secret and "sk_live" not in str(row.value)
        audits = {a.entity_id: a for a in db.session.scalars(sa.select(AuditLog).where(AuditLog.entity == "Setting"))}
        assert set(audits) == {"site.name", "site.support_email", "storage.presign_seconds",
                               "payments.stripe_secret_key"}
        assert audits["site.name"].old_values == {"value": "Neurapix"}
        assert audits["site.name"].new_values == {"value": "Pixel Forge"}
        assert audits["payments.stripe_secret_key"].new_values == {"value": MASK}
        assert "sk_live" not in str([(a.old_values, a.new_values) for a in audits.values()])

    page = owner.get("/admin/settings/").get_data(as_text=True)
    assert "sk_live_abcdefgh12345678" not in page and MASK + "5678" in page
    assert "Pixel Forge" in owner.get("/").get_data(as_text=True)


def test_blank_secret_keeps_the_stored_value_and_remove_clears_it(web):
    owner = signed_in(web, "admin")
    assert save_settings(owner, storage__s3_secret_access_key="first-secret-value").status_code == 302
    assert save_settings(owner, site__name="Renamed").status_code == 302  # secret field left blank
    with web.app_context():
        assert settings.get("storage.s3_secret_access_key") == "first-secret-value"
    assert save_settings(owner, **{"storage__s3_secret_access_key__clear": "y"}).status_code == 302
    with web.app_context():
        assert settings.get("storage.s3_secret_access_key") == ""
        assert db.session.get(Setting, "storage.s3_secret_access_key") is None


def test_invalid_values_are_refused_with_a_message_per_field_and_nothing_is_saved(web):
    owner = signed_in(web, "admin")
    resp = save_settings(owner, site__name="Changed", site__support_email="not-an-email",
                         storage__presign_seconds="5", storage__backend="s3", storage__s3_bucket="",
                         site__default_language="English")
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    for message in ("Enter an email address", "from 60 to", "Name the bucket", "language code"):
        assert message in html
    assert 'value="Changed"' in html  # what was typed is shown again
    with web.app_context():
        assert settings.get("site.name") == "Neurapix"
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditLog)) == 0


def test_a_partial_post_changes_only_the_fields_it_carries(web):
    owner = signed_in(web, "admin")
    save_settings(owner, site__name="Kept Name", flags__signup=None)
    assert post(owner, "/admin/settings/", {"site.support_email": "desk@example.com"}).status_code == 302
    with web.app_context():
        assert settings.get("site.support_email") == "desk@example.com"
        assert settings.get("site.name") == "Kept Name" and settings.flag("signup") is False


def test_viewer_sees_values_with_secrets_masked_but_cannot_save(web):
    owner, viewer = signed_in(web, "admin"), signed_in(web, "viewer")
    save_settings(owner, payments__paypal_client_secret="paypal-very-secret-1234", site__name="Shown To Viewer")
    page = viewer.get("/admin/settings/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Shown To Viewer" in html and MASK + "1234" in html and "paypal-very-secret" not in html
    assert "<fieldset disabled>" in html and "Save settings" not in html
    forged = post(viewer, "/admin/settings/", {"site.name": "Hijacked"})
    assert forged.status_code == 403
    with web.app_context():
        assert settings.get("site.name") == "Shown To Viewer"


@pytest.mark.parametrize("role,status", [("support", 403), ("customer", 403)])
def test_support_and_customers_cannot_see_settings(web, role, status):
    client = signed_in(web, role)
    assert client.get("/admin/settings/").status_code == status
    assert post(client, "/admin/settings/", {"site.name": "Hijacked"}).status_code == status


def test_anonymous_visitors_are_sent_to_login(web):
    resp = web.test_client().get("/admin/settings/")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_a_change_in_one_instance_is_seen_by_another_on_its_next_request(app, web):
    other = with_settings_view(create_app("testing"))
    visitor = other.test_client()
    assert "<strong>Neurapix</strong>" in visitor.get("/pricing").get_data(as_text=True)  # cached now

    assert save_settings(signed_in(web, "admin"), site__name="Second Instance Co").status_code == 302
    assert "<strong>Second Instance Co</strong>" in visitor.get("/pricing").get_data(as_text=True)
    save_settings(signed_in(web, "admin"), flags__maintenance="y")
    assert visitor.get("/pricing").status_code == 503


def test_an_unchanged_version_costs_one_query_per_request(web):
    from sqlalchemy import event

    client = web.test_client()
    client.get("/pricing")  # warm: settings loaded once
    statements = []
    with web.app_context():
        engine = db.engine
    listener = lambda *args: statements.append(args[2])  # noqa: E731  (conn, cursor, statement, …)
    event.listen(engine, "before_cursor_execute", listener)
    try:
        client.get("/pricing")
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert len([s for s in statements if "FROM settings" in s]) == 1


def test_maintenance_blocks_customers_but_not_staff_or_webhooks(web):
    with web.app_context():
        p.local_function("enhance")
    save_settings(signed_in(web, "admin"), flags__maintenance="y",
                  flags__maintenance_message="Back at 14:00 UTC after the database upgrade.")

    anonymous, customer, support = web.test_client(), signed_in(web, "customer"), signed_in(web, "support")
    for client in (anonymous, customer):
        for path in ("/", "/pricing", "/f/enhance", "/account", "/signup", "/sitemap.xml"):
            resp = client.get(path)
            assert resp.status_code == 503, path
        assert "Back at 14:00 UTC" in client.get("/").get_data(as_text=True)
    assert customer.get("/api/v1/jobs").get_json()["maintenance"] is True

    assert support.get("/").status_code == 200
    assert support.get("/f/enhance").status_code == 200
    assert support.get("/admin/").status_code == 200
    assert anonymous.get("/login").status_code == 200
    assert anonymous.get("/static/css/site.css").status_code == 200
    # Payment webhooks must get through: whatever the route answers, it is not the maintenance page.
    assert anonymous.post("/webhooks/stripe", data=b"{}").status_code != 503

    save_settings(signed_in(web, "admin"), flags__maintenance=None)
    assert customer.get("/").status_code == 200


def test_sign_up_flag_closes_sign_up(web):
    save_settings(signed_in(web, "admin"), flags__signup=None)
    visitor = web.test_client()
    resp = visitor.get("/signup")
    assert resp.status_code == 403 and "Sign-up is closed" in resp.get_data(as_text=True)
    resp = post(visitor, "/signup", {"email": "new@example.com", "password": "long-enough-password",
                                     "confirm": "long-enough-password"})
    assert resp.status_code == 403
    assert visitor.get("/login").status_code == 200


def test_function_page_flag_hides_only_that_page(web):
    with web.app_context():
        p.local_function("enhance")
        p.local_function("upscale", operation="upscale")
    owner = signed_in(web, "admin")
    page = owner.get("/admin/settings/").get_data(as_text=True)
    data = form_values(page, "site.name")
    assert sorted(data.getlist("flags.function_pages_off")) == ["enhance", "upscale"]  # all on
    data.setlist("flags.function_pages_off", ["upscale"])  # untick enhance
    assert owner.post("/admin/settings/", data=data).status_code == 302

    visitor = web.test_client()
    assert visitor.get("/f/enhance").status_code == 404
    assert visitor.get("/f/upscale").status_code == 200
    sitemap = visitor.get("/sitemap.xml").get_data(as_text=True)
    assert "/f/upscale" in sitemap and "/f/enhance" not in sitemap
    with web.app_context():
        assert settings.get("flags.function_pages_off") == ["enhance"]


def test_api_flag_switches_the_api_paths_off(web):
    save_settings(signed_in(web, "admin"), flags__api=None)
    resp = web.test_client().get("/api/v1/jobs")
    assert resp.status_code == 404 and resp.get_json() == {"error": "The API is switched off."}


def test_rotate_secrets_reencrypts_under_the_newest_key(web):
    save_settings(signed_in(web, "admin"), payments__stripe_webhook_secret="whsec_rotate_me_0001")
    old_key = web.config["ENCRYPTION_KEY"]
    new_key = Fernet.generate_key().decode()
    try:
        web.config["ENCRYPTION_KEY"] = f"{new_key},{old_key}"
        with web.app_context():
            assert settings.rotate_secrets() == 1
            db.session.commit()
            token = db.session.get(Setting, "payments.stripe_webhook_secret").value
        assert Fernet(new_key.encode()).decrypt(token.encode())
        web.config["ENCRYPTION_KEY"] = new_key
        with web.app_context():
            db.session.info.clear()
            web.extensions.pop("neurapix_settings", None)
            assert settings.get("payments.stripe_webhook_secret") == "whsec_rotate_me_0001"
    finally:
        web.config["ENCRYPTION_KEY"] = old_key
