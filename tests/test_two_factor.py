"""Two-factor authentication: enrol from the profile (server-drawn QR code and the key in text), confirm with
a code, login's second step, no code accepted twice, recovery codes used once, roles that require it, and an
admin's reset; every event audited."""
import re
import time

import pyotp
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, User
from app.services import settings
from tests.helpers import login, make_user, post

PASSWORD = "correct-horse-battery"


def _enrol(client):
    """Turn 2FA on through the security page; returns (secret, recovery codes)."""
    page = client.get("/account/security").get_data(as_text=True)
    assert "<svg" in page
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    resp = post(client, "/account/security/2fa", {"code": pyotp.TOTP(secret).now()})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    codes = re.findall(r"<li>([0-9a-f]{5}-[0-9a-f]{5})</li>", resp.get_data(as_text=True))
    return secret, codes


def _password_step(client, user):
    resp = post(client, "/login", {"email": user.email, "password": PASSWORD})
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login/2fa"), resp.headers["Location"]


def _later_code(secret, steps=1):
    """The code of a later time step (accepted within the window, and never used before)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps)


def _actions(app, action):
    with app.app_context():
        return db.session.scalars(sa.select(AuditLog).where(AuditLog.action == action)).all()


def _enrolled_user(app, role="customer"):
    with app.app_context():
        user = make_user(role)
    client = app.test_client()
    login(client, user)
    secret, codes = _enrol(client)
    return user, secret, codes


def test_enrolment_shows_a_qr_code_and_stores_only_encrypted_and_hashed_secrets(app, client):
    with app.app_context():
        user = make_user()
    login(client, user)
    secret, codes = _enrol(client)
    assert len(codes) == 10 and len(set(codes)) == 10
    with app.app_context():
        stored = db.session.get(User, user.id)
        assert stored.totp_secret and secret not in stored.totp_secret
        assert len(stored.recovery_codes) == 10 and not set(codes) & set(stored.recovery_codes)
        assert not any(code.replace("-", "") in stored.recovery_codes for code in codes)
    (row,) = _actions(app, "2fa_enrol")
    assert row.entity_id == str(user.id) and row.ip == "127.0.0.1"
    assert "On. Login asks for a code" in client.get("/account/security").get_data(as_text=True)


def test_a_wrong_code_does_not_turn_2fa_on(app, client):
    with app.app_context():
        user = make_user()
    login(client, user)
    client.get("/account/security")
    resp = post(client, "/account/security/2fa", {"code": "000000"})
    assert resp.status_code == 400 and "does not match" in resp.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(User, user.id).totp_secret is None


def test_login_asks_for_the_code_and_is_not_signed_in_before_it(app):
    user, secret, _codes = _enrolled_user(app)
    client = app.test_client()
    _password_step(client, user)
    assert client.get("/account").status_code == 302  # the password alone signs nobody in
    bad = post(client, "/login/2fa", {"code": "123456"})
    assert bad.status_code == 401 and client.get("/account").status_code == 302
    ok = post(client, "/login/2fa", {"code": _later_code(secret)})
    assert ok.status_code == 302 and ok.headers["Location"] == "/account"
    assert client.get("/account").status_code == 200


def test_a_code_is_never_accepted_twice(app):
    user, secret, _codes = _enrolled_user(app)
    code = _later_code(secret)
    first = app.test_client()
    _password_step(first, user)
    assert post(first, "/login/2fa", {"code": code}).status_code == 302
    replay = app.test_client()
    _password_step(replay, user)
    resp = post(replay, "/login/2fa", {"code": code})
    assert resp.status_code == 401 and "already used" in resp.get_data(as_text=True)
    assert replay.get("/account").status_code == 302


def test_the_enrolment_code_cannot_be_replayed_at_login(app):
    with app.app_context():
        user = make_user()
    client = app.test_client()
    login(client, user)
    page = client.get("/account/security").get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    code = pyotp.TOTP(secret).now()
    assert post(client, "/account/security/2fa", {"code": code}).status_code == 200
    other = app.test_client()
    _password_step(other, user)
    resp = post(other, "/login/2fa", {"code": code})
    assert resp.status_code == 401 and "already used" in resp.get_data(as_text=True)


def test_a_recovery_code_works_once(app):
    user, _secret, codes = _enrolled_user(app)
    first = app.test_client()
    _password_step(first, user)
    assert post(first, "/login/2fa", {"code": codes[0].upper()}).status_code == 302
    again = app.test_client()
    _password_step(again, user)
    resp = post(again, "/login/2fa", {"code": codes[0]})
    assert resp.status_code == 401 and again.get("/account").status_code == 302
    with app.app_context():
        assert len(db.session.get(User, user.id).recovery_codes) == 9
    (row,) = _actions(app, "2fa_recovery_code_used")
    assert row.new_values == {"recovery_codes_left": 9}


def test_wrong_codes_lock_the_account_like_wrong_passwords(app):
    user, secret, _codes = _enrolled_user(app)
    client = app.test_client()
    _password_step(client, user)
    for _ in range(5):
        assert post(client, "/login/2fa", {"code": "000000"}).status_code == 401
    resp = post(client, "/login/2fa", {"code": _later_code(secret)})
    assert resp.status_code == 401 and "Too many failed attempts" in resp.get_data(as_text=True)
    assert len(_actions(app, "lockout")) == 1


def test_the_second_step_needs_the_first(app, client):
    resp = client.get("/login/2fa")
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")


def test_a_role_that_requires_2fa_is_sent_to_enrol_before_the_admin(app):
    with app.app_context():
        admin = make_user("admin")
        settings.update({"security.require_2fa_support": True})
        support = make_user("support")
    client = app.test_client()
    resp = post(client, "/login", {"email": support.email, "password": PASSWORD})
    assert resp.headers["Location"] == "/account/security"
    blocked = client.get("/admin/users/")
    assert blocked.status_code == 302 and blocked.headers["Location"] == "/account/security"
    _enrol(client)
    assert client.get("/admin/users/").status_code == 200
    # A role that is not required is left alone.
    other = app.test_client()
    login(other, admin)
    assert other.get("/admin/").status_code == 200
    # And a required role cannot switch it off again.
    resp = post(client, "/account/security/2fa/off", {"password": PASSWORD})
    assert resp.status_code == 400 and "requires two-factor" in resp.get_data(as_text=True)


def test_a_customer_turns_2fa_off_with_their_password(app):
    user, _secret, _codes = _enrolled_user(app)
    client = app.test_client()
    login(client, user)
    assert post(client, "/account/security/2fa/off", {"password": "wrong-password"}).status_code == 400
    assert post(client, "/account/security/2fa/off", {"password": PASSWORD}).status_code == 302
    with app.app_context():
        assert db.session.get(User, user.id).totp_secret is None
    assert len(_actions(app, "2fa_disable")) == 1


def test_an_admin_resets_a_members_2fa_and_it_is_audited(app):
    member, _secret, _codes = _enrolled_user(app, "support")
    with app.app_context():
        admin = make_user("admin", email="owner@example.com")
    owner = app.test_client()
    login(owner, admin)
    assert "Reset two-factor" in owner.get(f"/admin/users/details/?id={member.id}").get_data(as_text=True)
    assert post(owner, f"/admin/users/reset-2fa?id={member.id}").status_code == 302
    with app.app_context():
        stored = db.session.get(User, member.id)
        assert (stored.totp_secret, stored.recovery_codes) == (None, None)
    (row,) = _actions(app, "2fa_reset")
    assert (row.entity_id, row.actor_email) == (str(member.id), "owner@example.com")
    # The member logs in with the password alone again.
    client = app.test_client()
    assert post(client, "/login", {"email": member.email, "password": PASSWORD}).headers["Location"] == "/admin/"
