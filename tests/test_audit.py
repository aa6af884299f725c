"""Every create/update/delete through the admin leaves an audit row; secrets never appear in clear."""
import json

import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, Provider, User
from app.services.crypto import decrypt_json
from tests.helpers import form_values, login, make_user, post

TOKEN = "r8_live_token_abcdefgh1234"


def _audit(app):
    with app.app_context():
        return db.session.scalars(sa.select(AuditLog).order_by(AuditLog.id)).all()


def _provider(app):
    with app.app_context():
        return db.session.scalars(sa.select(Provider)).one()


def test_provider_create_update_delete_are_audited_with_secrets_masked(app, client):
    with app.app_context():
        admin = make_user("admin", email="owner@example.com")
    login(client, admin)
    created = post(client, "/admin/providers/new/", {
        "name": "Replicate main", "key": "replicate", "enabled": "y",
        "config": json.dumps({"endpoint": "https://api.replicate.com/v1", "timeout": 120}),
        "secret__api_token": TOKEN,
    }, headers={"User-Agent": "pytest-browser/1.0"})
    assert created.status_code == 302
    provider = _provider(app)
    assert TOKEN not in (provider.secrets or "")
    with app.app_context():
        assert decrypt_json(provider.secrets) == {"api_token": TOKEN}

    # The edit form shows the secret masked; leaving the field blank keeps the stored token.
    page = client.get(f"/admin/providers/edit/?id={provider.id}").get_data(as_text=True)
    assert TOKEN not in page and "••••1234" in page
    data = form_values(page)
    data["name"] = "Replicate EU"
    assert client.post(f"/admin/providers/edit/?id={provider.id}", data=data).status_code == 302
    with app.app_context():
        assert decrypt_json(_provider(app).secrets) == {"api_token": TOKEN}

    # A new token replaces the old one and is audited as changed, masked.
    data["secret__api_token"] = "r8_new_token_zzzz9999"
    assert client.post(f"/admin/providers/edit/?id={provider.id}", data=data).status_code == 302
    assert post(client, "/admin/providers/delete/", {"id": provider.id, "url": "/admin/providers/"}).status_code == 302

    rows = _audit(app)
    assert [(r.action, r.entity) for r in rows] == [
        ("create", "Provider"), ("update", "Provider"), ("update", "Provider"), ("delete", "Provider")]
    create, rename, rotate, delete = rows
    assert create.actor_email == "owner@example.com" and create.ip == "127.0.0.1"
    assert create.user_agent == "pytest-browser/1.0"
    assert create.new_values["name"] == "Replicate main" and create.new_values["secrets"] == "••••"
    assert rename.old_values == {"name": "Replicate main"} and rename.new_values == {"name": "Replicate EU"}
    assert rotate.old_values == {"secrets": "••••"} and rotate.new_values == {"secrets": "••••"}
    assert delete.old_values["name"] == "Replicate EU"
    dumped = json.dumps([[r.old_values, r.new_values] for r in rows])
    assert TOKEN not in dumped and "r8_new_token" not in dumped


def test_user_password_is_masked_in_the_audit(app, client):
    with app.app_context():
        login(client, make_user("admin"))
    resp = post(client, "/admin/users/new/", {"email": "Support@Example.com", "new_password": "support-pass-1",
                                              "role": "support"})
    assert resp.status_code == 302
    with app.app_context():
        user = db.session.scalars(sa.select(User).where(User.email == "support@example.com")).one()
        assert user.role == "support" and user.check_password("support-pass-1")
    (row,) = _audit(app)
    assert row.new_values["password_hash"] == "••••"
    assert "support-pass-1" not in json.dumps(row.new_values)


def test_new_user_without_password_is_refused(app, client):
    with app.app_context():
        login(client, make_user("admin"))
    resp = post(client, "/admin/users/new/", {"email": "nopass@example.com", "role": "customer"})
    assert resp.status_code == 200 and "needs a password" in resp.get_data(as_text=True)
    assert _audit(app) == []


def test_invalid_provider_config_is_refused_and_nothing_saved(app, client):
    with app.app_context():
        login(client, make_user("admin"))
    resp = post(client, "/admin/providers/new/", {"name": "Broken", "key": "runpod", "config": '{"timeout": -5}'})
    assert resp.status_code == 200 and "endpoint" in resp.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Provider)) == 0
    assert _audit(app) == []
