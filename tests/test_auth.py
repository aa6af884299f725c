"""Sign-up, login, bans, CSRF on every form, and case-insensitive unique emails."""
import re

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import User
from tests.helpers import csrf_token, login, make_user, post


def _users(app):
    with app.app_context():
        return db.session.scalars(sa.select(User.email)).all()


SIGNED_UP = "If this address is new, your account is ready"


def test_signup_creates_a_customer_who_can_log_in(app, client):
    resp = post(client, "/signup", {"email": "New@Example.com", "password": "s3cret-pass", "confirm": "s3cret-pass"},
                follow_redirects=True)
    assert resp.status_code == 200 and SIGNED_UP in resp.get_data(as_text=True)
    with app.app_context():
        user = db.session.scalars(sa.select(User)).one()
        assert (user.email, user.role, user.balance) == ("new@example.com", "customer", 0)
    assert post(client, "/login", {"email": "new@example.com", "password": "s3cret-pass"}).status_code == 302
    assert "new@example.com" in client.get("/account").get_data(as_text=True)


def test_signup_never_reveals_an_email_in_use_whatever_its_case(app, client):
    with app.app_context():
        make_user(email="taken@example.com")
    fresh = post(client, "/signup", {"email": "fresh@example.com", "password": "s3cret-pass",
                                     "confirm": "s3cret-pass"}, follow_redirects=True)
    taken = post(client, "/signup", {"email": "TAKEN@example.com", "password": "s3cret-pass",
                                     "confirm": "s3cret-pass"}, follow_redirects=True)
    assert taken.status_code == fresh.status_code == 200
    # Byte for byte the same page (bar the CSRF token) for a new address and a taken one.
    strip = lambda r: re.sub(r'name="csrf_token"[^>]*', "", r.get_data(as_text=True))  # noqa: E731
    assert SIGNED_UP in strip(taken) and strip(taken) == strip(fresh)
    assert sorted(_users(app)) == ["fresh@example.com", "taken@example.com"]
    with app.app_context():  # the existing account keeps its own password
        assert db.session.scalars(sa.select(User).where(User.email == "taken@example.com")).one() \
            .check_password("correct-horse-battery")


def test_email_uniqueness_is_enforced_by_the_database(app):
    with app.app_context():
        db.session.execute(sa.text("INSERT INTO users (email, password_hash, role, balance, is_banned, created_at) "
                                   "VALUES ('a@x.io', 'h', 'customer', 0, false, now())"))
        with pytest.raises(sa.exc.IntegrityError):
            db.session.execute(sa.text("INSERT INTO users (email, password_hash, role, balance, is_banned, created_at) "
                                       "VALUES ('A@X.io', 'h', 'customer', 0, false, now())"))
        db.session.rollback()


def test_balance_can_never_go_negative(app):
    with app.app_context():
        user = make_user(balance=1)
        with pytest.raises(sa.exc.IntegrityError):
            db.session.execute(sa.update(User).where(User.id == user.id).values(balance=-1))
        db.session.rollback()


def test_login_and_logout(app, client):
    with app.app_context():
        make_user("admin", email="owner@example.com", password="owner-password")
    resp = post(client, "/login", {"email": "OWNER@example.com", "password": "owner-password"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert post(client, "/logout").status_code == 302
    assert client.get("/admin/").status_code == 302


def test_wrong_password_is_refused(app, client):
    with app.app_context():
        make_user(email="c@example.com", password="right-password")
    resp = post(client, "/login", {"email": "c@example.com", "password": "wrong-password"})
    assert resp.status_code == 401 and "Wrong email or password" in resp.get_data(as_text=True)


def test_banned_user_cannot_log_in(app, client):
    with app.app_context():
        make_user(email="b@example.com", password="right-password", is_banned=True)
    resp = post(client, "/login", {"email": "b@example.com", "password": "right-password"})
    assert resp.status_code == 401 and "suspended" in resp.get_data(as_text=True)
    assert client.get("/account").status_code == 302


def test_ban_ends_an_open_session(app, client):
    with app.app_context():
        user = make_user()
    login(client, user)
    assert client.get("/account").status_code == 200
    with app.app_context():
        db.session.get(User, user.id).is_banned = True
        db.session.commit()
    assert client.get("/account").status_code == 302


def test_login_never_redirects_off_site(app, client):
    with app.app_context():
        make_user(email="c@example.com", password="right-password")
    resp = post(client, "/login?next=//evil.example/x", {"email": "c@example.com", "password": "right-password"})
    assert resp.headers["Location"] == "/account"


def test_post_without_csrf_token_is_rejected_and_changes_nothing(app, client):
    resp = client.post("/signup", data={"email": "x@example.com", "password": "s3cret-pass", "confirm": "s3cret-pass"})
    assert resp.status_code == 400
    assert _users(app) == []


def test_admin_post_without_csrf_token_is_rejected_and_changes_nothing(app, client):
    with app.app_context():
        admin = make_user("admin")
    login(client, admin)
    resp = client.post("/admin/plans/new/", data={"name": "Sneaky", "kind": "pack", "price": "1", "currency": "USD",
                                                  "credits": "1", "limits": "{}", "sort_order": "0"})
    assert resp.status_code == 400
    bad = client.post("/admin/users/delete/", data={"id": admin.id, "csrf_token": "forged"})
    assert bad.status_code == 400
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1
        assert db.session.execute(sa.text("SELECT count(*) FROM plans")).scalar() == 0


def test_admin_create_with_csrf_token_works(app, client):
    with app.app_context():
        login(client, make_user("admin"))
    token = csrf_token(client)
    resp = client.post("/admin/plans/new/", data={"csrf_token": token, "name": "Pack", "kind": "pack", "price": "500",
                                                  "currency": "USD", "credits": "50", "limits": "{}",
                                                  "sort_order": "0", "description": ""})
    assert resp.status_code == 302
    with app.app_context():
        assert db.session.execute(sa.text("SELECT name FROM plans")).scalar() == "Pack"


def test_session_cookie_is_http_only_and_same_site(app, client):
    with app.app_context():
        make_user(email="c@example.com", password="right-password")
    resp = post(client, "/login", {"email": "c@example.com", "password": "right-password"})
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
