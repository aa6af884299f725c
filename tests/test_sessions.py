"""Sessions end when they should: a cookie captured before logout, a password or role change, a ban or
"sign out everywhere" is refused after; idle and absolute lifetimes; staff get no remember-me; login rotates."""
import time
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, User
from app.services import sessions
from tests.helpers import form_values, login, make_user, post

PASSWORD = "correct-horse-battery"


def _log_in(client, user, remember=False):
    data = {"email": user.email, "password": PASSWORD}
    if remember:
        data["remember"] = "y"
    resp = post(client, "/login", data)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return resp


def _thief(app, client, *names):
    """A second browser holding copies of the victim's cookies."""
    other = app.test_client()
    for name in names:
        cookie = client.get_cookie(name)
        assert cookie is not None, f"no {name} cookie to steal"
        other.set_cookie(name, cookie.value)
    return other


def _signed_in(client, path="/account"):
    return client.get(path).status_code == 200


def _revocations(app):
    with app.app_context():
        return [(r.entity_id, r.new_values["cause"]) for r in
                db.session.scalars(sa.select(AuditLog).where(AuditLog.action == "revoke_sessions"))]


def test_a_cookie_captured_before_logout_is_refused_after(app, client):
    with app.app_context():
        user = make_user()
    _log_in(client, user)
    thief = _thief(app, client, "session")
    assert _signed_in(thief)
    assert post(client, "/logout").status_code == 302
    assert not _signed_in(thief)


def test_a_cookie_captured_before_a_password_change_is_refused_after(app, client):
    with app.app_context():
        user = make_user()
    _log_in(client, user)
    thief = _thief(app, client, "session")
    resp = post(client, "/account/security/password", {"current": PASSWORD, "password": "a-new-long-passphrase",
                                                        "confirm": "a-new-long-passphrase"})
    assert resp.status_code == 302
    assert not _signed_in(thief)
    assert _signed_in(client)  # the browser that changed it carries on
    assert _revocations(app) == [(str(user.id), "password change")]


def test_a_weak_new_password_is_refused_with_the_reason(app, client):
    with app.app_context():
        user = make_user()
    _log_in(client, user)
    resp = post(client, "/account/security/password", {"current": PASSWORD, "password": "qwertyuiop",
                                                        "confirm": "qwertyuiop"})
    assert resp.status_code == 400 and "common password" in resp.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(User, user.id).check_password(PASSWORD)


def test_a_remember_me_cookie_is_revoked_by_sign_out_everywhere(app, client):
    with app.app_context():
        user = make_user()
    resp = _log_in(client, user, remember=True)
    remember = [c for c in resp.headers.getlist("Set-Cookie") if c.startswith("remember_token=")]
    assert remember, "customers who tick the box get a remember-me cookie"
    expires = datetime.strptime(remember[0].split("Expires=")[1].split(";")[0], "%a, %d %b %Y %H:%M:%S GMT")
    assert timedelta(days=13) < expires.replace(tzinfo=timezone.utc) - datetime.now(timezone.utc) <= timedelta(days=14)
    thief = _thief(app, client, "remember_token")
    assert _signed_in(thief)  # the remember cookie alone signs in
    thief_later = _thief(app, client, "remember_token")
    assert post(client, "/account/security/sign-out-everywhere").status_code == 302
    assert not _signed_in(thief) and not _signed_in(thief_later) and not _signed_in(client)
    assert _revocations(app) == [(str(user.id), "sign out everywhere")]


def test_staff_get_no_remember_me_cookie(app, client):
    with app.app_context():
        admin = make_user("admin")
    resp = _log_in(client, admin, remember=True)
    assert not [c for c in resp.headers.getlist("Set-Cookie") if c.startswith("remember_token=")]


@pytest.mark.parametrize("change", ["ban", "role", "admin sign out"])
def test_a_cookie_captured_before_an_admin_change_is_refused_after(app, client, change):
    with app.app_context():
        admin, victim = make_user("admin"), make_user("support")
    _log_in(client, victim)
    thief = _thief(app, client, "session")
    assert _signed_in(thief, "/admin/")
    owner = app.test_client()
    login(owner, admin)
    if change == "ban":
        assert post(owner, f"/admin/users/ban?id={victim.id}", {"reason": "left the company"}).status_code == 302
    elif change == "role":
        data = form_values(owner.get(f"/admin/users/edit/?id={victim.id}").get_data(as_text=True), "email")
        data["role"] = "viewer"
        assert owner.post(f"/admin/users/edit/?id={victim.id}", data=data).status_code == 302
    else:
        assert post(owner, f"/admin/users/sign-out?id={victim.id}").status_code == 302
    assert not _signed_in(thief, "/admin/") and not _signed_in(client, "/admin/")
    cause = {"ban": "ban", "role": "role change", "admin sign out": "sign out everywhere"}[change]
    assert _revocations(app) == [(str(victim.id), cause)]


def _age_session(client, **seconds_ago):
    now = int(time.time())
    with client.session_transaction() as sess:
        for key, ago in seconds_ago.items():
            sess[{"login": sessions.LOGIN_AT, "seen": sessions.SEEN_AT}[key]] = now - ago


def test_staff_sessions_end_after_30_idle_minutes(app, client):
    with app.app_context():
        admin = make_user("admin")
    _log_in(client, admin)
    _age_session(client, seen=29 * 60)
    assert _signed_in(client, "/admin/")
    _age_session(client, seen=31 * 60)
    resp = client.get("/admin/")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    assert not _signed_in(client, "/admin/")


def test_staff_sessions_end_after_their_absolute_lifetime(app, client):
    with app.app_context():
        admin = make_user("admin")
    _log_in(client, admin)
    _age_session(client, login=13 * 3600, seen=10)
    assert not _signed_in(client, "/admin/")


def test_customers_are_not_timed_out_for_idling_but_end_after_14_days(app, client):
    with app.app_context():
        customer = make_user()
    _log_in(client, customer)
    _age_session(client, login=13 * 86400, seen=5 * 86400)
    assert _signed_in(client)
    _age_session(client, login=15 * 86400)
    assert not _signed_in(client)


def test_idle_timeout_is_a_setting(app, client):
    from app.services import settings

    with app.app_context():
        admin = make_user("admin")
        settings.update({"security.staff_idle_minutes": 5})
    _log_in(client, admin)
    _age_session(client, seen=6 * 60)
    assert not _signed_in(client, "/admin/")


def test_login_starts_a_fresh_session(app, client):
    with app.app_context():
        user = make_user()
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker"
    _log_in(client, user)
    with client.session_transaction() as sess:
        assert "planted" not in sess and sess["_user_id"] == f"{user.id}:0"


def test_a_session_id_without_its_version_signs_nobody_in(app, client):
    with app.app_context():
        user = make_user()
    with client.session_transaction() as sess:
        sess["_user_id"] = str(user.id)  # the pre-versions format: must not work any more
    assert not _signed_in(client)
