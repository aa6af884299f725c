"""Login throttling and lockout (real limits, real Redis), the same work and answer for unknown emails,
the password policy everywhere a password is set, and the audit rows of logins."""
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog
from app.services import passwords
from tests.helpers import login, make_user, post

PASSWORD = "correct-horse-battery"


def _try(client, email, password):
    return post(client, "/login", {"email": email, "password": password})


def _actions(app):
    with app.app_context():
        return [(r.action, r.entity_id, (r.new_values or {}).get("email"), r.ip) for r in
                db.session.scalars(sa.select(AuditLog).order_by(AuditLog.id))]


def test_five_wrong_passwords_lock_the_account_even_against_the_right_one(app, client):
    with app.app_context():
        user = make_user(email="victim@example.com")
    for _ in range(5):
        assert _try(client, "victim@example.com", "wrong-password").status_code == 401
    locked = _try(client, "victim@example.com", PASSWORD)
    assert locked.status_code == 401 and "Too many failed attempts" in locked.get_data(as_text=True)
    assert client.get("/account").status_code == 302
    actions = [a[:2] for a in _actions(app)]
    assert actions == [("login_failed", str(user.id))] * 5 + [("lockout", str(user.id))]
    assert {a[3] for a in _actions(app)} == {"127.0.0.1"}


def test_an_admin_lifts_a_lockout_and_it_is_audited(app, client):
    with app.app_context():
        user = make_user(email="victim@example.com")
        admin = make_user("admin", email="owner@example.com")
    for _ in range(5):
        _try(client, "victim@example.com", "wrong-password")
    owner = app.test_client()
    login(owner, admin)
    assert "Login locked" in owner.get(f"/admin/users/details/?id={user.id}").get_data(as_text=True)
    assert post(owner, f"/admin/users/unlock?id={user.id}").status_code == 302
    assert _try(client, "victim@example.com", PASSWORD).status_code == 302
    with app.app_context():
        row = db.session.scalars(sa.select(AuditLog).where(AuditLog.action == "unlock")).one()
        assert (row.entity_id, row.actor_email, row.old_values) == (str(user.id), "owner@example.com", {"locked": True})
        assert db.session.scalars(sa.select(AuditLog).where(AuditLog.action == "login")).one().entity_id == str(user.id)


def test_an_unknown_email_locks_and_answers_exactly_like_a_real_one(app, client):
    with app.app_context():
        make_user(email="real@example.com")
    answers = {}
    for email in ("real@example.com", "nobody@example.com"):
        pages = [_try(client, email, "wrong-password") for _ in range(6)]
        answers[email] = [(r.status_code, "Too many failed attempts" in r.get_data(as_text=True)) for r in pages]
    assert answers["real@example.com"] == answers["nobody@example.com"] == [(401, False)] * 5 + [(401, True)]


def test_unknown_emails_cost_the_same_password_check(app, client, monkeypatch):
    """One hash check per attempt whatever the email: counted, not timed."""
    calls = []
    real = passwords.check_password_hash
    monkeypatch.setattr(passwords, "check_password_hash", lambda h, p: calls.append(h) or real(h, p))
    with app.app_context():
        make_user(email="real@example.com")
    for email in ("real@example.com", "nobody@example.com"):
        calls.clear()
        _try(client, email, "wrong-password")
        assert len(calls) == 1 and calls[0].startswith(("scrypt:", "pbkdf2:")), email
    # The dummy hash uses the same algorithm and cost as a real one.
    with app.app_context():
        from app.models import User

        real_hash = db.session.scalars(sa.select(User.password_hash)).one()
    assert passwords._DUMMY_HASH.split("$")[0] == real_hash.split("$")[0]


def test_too_many_attempts_from_one_address_are_refused(app, client):
    app.config["LOGIN_IP_LIMIT"] = "3 per minute"
    try:
        statuses = [_try(client, f"user{i}@example.com", "wrong-password").status_code for i in range(4)]
    finally:
        app.config["LOGIN_IP_LIMIT"] = "30 per minute"
    assert statuses == [401, 401, 401, 429]


def test_failed_logins_are_audited_without_the_password(app, client):
    _try(client, "nobody@example.com", "my-secret-guess")
    with app.app_context():
        (row,) = db.session.scalars(sa.select(AuditLog)).all()
        assert (row.action, row.entity_id, row.new_values, row.actor_email) == \
            ("login_failed", None, {"email": "nobody@example.com"}, None)
        assert "my-secret-guess" not in str(row.old_values) + str(row.new_values)


@pytest.mark.parametrize("password,reason", [
    ("short-pw", "at least 10 characters"),
    ("password123", "common password"),
    ("qwertyuiop", "common password"),
    ("aaaaaaaaaaaa", "Repeats"),
])
def test_sign_up_refuses_weak_passwords_and_says_why(app, client, password, reason):
    resp = post(client, "/signup", {"email": "new@example.com", "password": password, "confirm": password})
    assert resp.status_code == 400 and reason in resp.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.text("SELECT count(*) FROM users")) == 0


def test_cli_create_admin_applies_the_password_policy(app):
    result = app.test_cli_runner().invoke(args=["create-admin", "--email", "boss@example.com",
                                                "--password", "password1234"])
    assert result.exit_code != 0 and "common password" in result.output

