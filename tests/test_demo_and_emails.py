"""The demo logins `make run` prints work in the login form, and every form and the CLI judge an email address
by the same rule (services.accounts.normalise_email)."""
import re

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import User
from tests.helpers import login, make_user, post

BAD_EMAILS = ["someone@neurapix.local", "<script>alert(1)</script>@example.com", "no-at-sign", "a@localhost"]
PASSWORD = "a-long-enough-passphrase"


def test_make_run_prints_logins_that_work_in_the_login_form(app):
    # `make run` runs exactly `flask seed-demo` and shows its output.
    assert "$(BIN)/flask seed-demo" in open("Makefile").read()
    output = app.test_cli_runner().invoke(args=["seed-demo"]).output
    admin = re.search(r"Log in at /admin with (\S+) / (\S+)", output).groups()
    customer = re.search(r"Demo customer created with \d+ credits: (\S+) / (\S+)", output).groups()
    for (email, password), landing in ((admin, "/admin/"), (customer, "/account")):
        client = app.test_client()
        resp = post(client, "/login", {"email": email, "password": password})
        assert resp.status_code == 302 and resp.headers["Location"] == landing, resp.get_data(as_text=True)
        assert client.get(landing).status_code == 200


def _count(app):
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(User))


@pytest.mark.parametrize("email", BAD_EMAILS)
def test_every_form_and_the_cli_refuse_the_same_bad_emails(app, client, email):
    with app.app_context():
        admin = make_user("admin")
    before = _count(app)
    signup = post(client, "/signup", {"email": email, "password": PASSWORD, "confirm": PASSWORD})
    assert signup.status_code == 400 and "Invalid email address" in signup.get_data(as_text=True)
    log_in = post(client, "/login", {"email": email, "password": PASSWORD})
    assert log_in.status_code == 400 and "Invalid email address" in log_in.get_data(as_text=True)
    owner = app.test_client()
    login(owner, admin)
    created = post(owner, "/admin/users/new/", {"email": email, "new_password": PASSWORD, "role": "customer"})
    assert created.status_code == 200 and "Invalid email address" in created.get_data(as_text=True)
    edited = post(owner, f"/admin/users/edit/?id={admin.id}", {"email": email, "role": "admin"})
    assert edited.status_code == 200 and "Invalid email address" in edited.get_data(as_text=True)
    cli = app.test_cli_runner().invoke(args=["create-admin", "--email", email, "--password", PASSWORD])
    assert cli.exit_code != 0 and "Invalid email address" in cli.output
    assert _count(app) == before
    with app.app_context():
        assert db.session.get(User, admin.id).email == admin.email


def test_every_form_and_the_cli_accept_and_normalise_a_good_email(app, client):
    with app.app_context():
        admin = make_user("admin")
    assert post(client, "/signup", {"email": " Ann@Example.COM ", "password": PASSWORD,
                                    "confirm": PASSWORD}).status_code == 302
    assert post(client, "/login", {"email": "ANN@example.com", "password": PASSWORD}).status_code == 302
    owner = app.test_client()
    login(owner, admin)
    assert post(owner, "/admin/users/new/", {"email": "Bob@Example.com", "new_password": PASSWORD,
                                             "role": "customer"}).status_code == 302
    cli = app.test_cli_runner().invoke(args=["create-admin", "--email", "Cat@Example.com", "--password", PASSWORD])
    assert cli.exit_code == 0, cli.output
    with app.app_context():
        emails = set(db.session.scalars(sa.select(User.email)))
    assert {"ann@example.com", "bob@example.com", "cat@example.com"} <= emails
