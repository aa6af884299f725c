"""Who may act on whom, generated: actor role × target role × every action on a user in the admin, each tried
for real over HTTP; allowed ones take effect, refused ones answer 403 (or a form error) and change nothing.

The expectation below is the product's promise written out independently of services.permissions.
"""
import itertools

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, CreditLedger, EmailLog, User
from app.services import throttle
from app.services.audit import snapshot
from app.services.crypto import encrypt_json
from tests.helpers import flashes, form_values, login, make_user, post

ACTORS = ("admin", "support", "viewer")
TARGETS = ("admin", "support", "viewer", "customer", "self")
ACTIONS = ("edit", "set_password", "reset_link", "change_role", "credits", "ban", "unban", "revoke_sessions",
           "unlock", "reset_2fa", "delete")
SUPPORT_ON_CUSTOMERS = {"edit", "reset_link", "credits", "ban", "unban", "revoke_sessions", "unlock"}
NEW_PASSWORD = "a-brand-new-passphrase"


def expected(actor, target, action):
    if actor == "viewer":
        return False
    if actor == "support":
        return target == "customer" and action in SUPPORT_ON_CUSTOMERS
    # An admin acting on itself is the only active admin here: it cannot demote, ban or delete itself.
    return not (target == "self" and action in ("change_role", "ban", "delete"))


# A banned actor cannot sign in at all, so "unban myself" is no case.
CASES = [c for c in itertools.product(ACTORS, TARGETS, ACTIONS) if c[1:] != ("self", "unban")]


def _state(app, target_id):
    with app.app_context():
        user = db.session.get(User, target_id)
        return {"user": user and snapshot(user),
                "ledger": db.session.scalar(sa.select(sa.func.count()).select_from(CreditLedger)),
                "audit": db.session.scalar(sa.select(sa.func.count()).select_from(AuditLog)),
                "locked": user is not None and throttle.is_locked(user.email)}


def _edit(client, target, **changes):
    page = client.get(f"/admin/users/edit/?id={target.id}")
    data = form_values(page.get_data(as_text=True), "email") if page.status_code == 200 else \
        {"email": target.email, "role": target.role}
    for name, value in changes.items():
        data[name] = value  # replaces (MultiDict.update would append a second value)
    return post(client, f"/admin/users/edit/?id={target.id}", data)


def _act(client, target, action):
    base = "/admin/users"
    if action == "edit":
        return _edit(client, target, email=f"edited-{target.id}@example.com")
    if action == "set_password":
        return _edit(client, target, new_password=NEW_PASSWORD)
    if action == "change_role":
        return _edit(client, target, role="viewer" if target.role != "viewer" else "customer")
    if action == "credits":
        return post(client, f"{base}/credits?id={target.id}", {"amount": "5", "reason": "matrix"})
    if action in ("ban", "unban"):
        return post(client, f"{base}/ban?id={target.id}", {"reason": "matrix"})
    if action == "delete":
        return post(client, f"{base}/delete/", {"id": target.id, "url": f"{base}/"})
    endpoint = {"reset_link": "reset-email", "revoke_sessions": "sign-out", "unlock": "unlock",
                "reset_2fa": "reset-2fa"}[action]
    return post(client, f"{base}/{endpoint}?id={target.id}")


def _took_effect(app, resp, target, action):
    with app.app_context():
        if action == "reset_link":
            return db.session.scalar(sa.select(sa.func.count()).select_from(EmailLog).where(
                EmailLog.user_id == target.id, EmailLog.template == "password_reset")) == 1
        user = db.session.get(User, target.id)
        if action == "delete":
            return user is None
        return {
            "edit": lambda: user.email == f"edited-{target.id}@example.com",
            "set_password": lambda: user.check_password(NEW_PASSWORD),
            "change_role": lambda: user.role != target.role,
            "credits": lambda: user.balance == target.balance + 5,
            "ban": lambda: user.is_banned,
            "unban": lambda: not user.is_banned,
            "revoke_sessions": lambda: user.session_version == target.session_version + 1,
            "unlock": lambda: not throttle.is_locked(user.email),
            "reset_2fa": lambda: user.totp_secret is None,
        }[action]()


@pytest.mark.parametrize("actor_role,target_role,action", CASES, ids=["-".join(c) for c in CASES])
def test_who_may_act_on_whom(app, client, actor_role, target_role, action):
    with app.app_context():
        actor = make_user(actor_role)
        fields = {"totp_secret": encrypt_json("JBSWY3DPEHPK3PXP")} if action == "reset_2fa" else {}
        if action == "unban":
            fields.update(is_banned=True, ban_reason="earlier")
        if target_role == "self":
            target = actor
            if fields:
                db.session.execute(sa.update(User).where(User.id == actor.id).values(**fields))
                db.session.commit()
                target = db.session.get(User, actor.id)
                db.session.expunge(target)
                actor = target
        else:
            target = make_user(target_role, **fields)
        if action == "unlock":
            while not throttle.is_locked(target.email):
                throttle.record_failure(target.email)
    login(client, actor)
    before = _state(app, target.id)

    resp = _act(client, target, action)

    if expected(actor_role, target_role, action):
        assert resp.status_code == 302, \
            (resp.status_code, flashes(resp.get_data(as_text=True)))
        assert _took_effect(app, resp, target, action), f"{actor_role} {action} {target_role}: no effect"
    else:
        assert _state(app, target.id) == before, f"{actor_role} {action} {target_role} changed something"
        body = resp.get_data(as_text=True)
        # Refused outright, or a form error on the page; a support edit of a field its form lacks is ignored.
        ignored = actor_role == "support" and target_role == "customer" and action in ("set_password", "change_role")
        assert resp.status_code == 403 or (resp.status_code in (200, 400) and flashes(body)) or \
            (ignored and resp.status_code == 302), (resp.status_code, body[:300])


def test_support_never_sees_a_password_or_role_field(app, client):
    with app.app_context():
        support, customer = make_user("support"), make_user("customer")
    login(client, support)
    page = client.get(f"/admin/users/edit/?id={customer.id}").get_data(as_text=True)
    assert 'name="new_password"' not in page and 'name="role"' not in page


def test_the_last_admin_cannot_be_demoted_even_with_other_staff_around(app, client):
    with app.app_context():
        owner = make_user("admin")
        make_user("admin", is_banned=True, ban_reason="left")  # a banned admin does not count
    login(client, owner)
    resp = _edit(client, owner, role="support")
    assert resp.status_code == 200 and "last active admin" in " ".join(flashes(resp.get_data(as_text=True)))
    with app.app_context():
        assert db.session.get(User, owner.id).role == "admin"


@pytest.mark.parametrize("amount,message", [
    ("10001", "limited to 10000 credits"), ("-10001", "limited to 10000 credits"), ("abc", "whole number"),
    ("", "whole number"), ("1e3", "whole number"), ("99999999999999999999999", "limited to"),
    ("0", "non-zero"),
])
def test_bad_credit_amounts_get_a_form_error_and_change_nothing(app, client, amount, message):
    with app.app_context():
        admin, customer = make_user("admin"), make_user("customer")
    login(client, admin)
    before = _state(app, customer.id)
    resp = post(client, f"/admin/users/credits?id={customer.id}", {"amount": amount, "reason": "typo"})
    assert resp.status_code == 400 and message in resp.get_data(as_text=True)
    assert _state(app, customer.id) == before


def test_the_credit_cap_is_a_setting(app, client):
    from app.services import settings

    with app.app_context():
        admin, customer = make_user("admin"), make_user("customer")
        settings.update({"security.credit_adjust_max": 50})
    login(client, admin)
    assert post(client, f"/admin/users/credits?id={customer.id}", {"amount": "51", "reason": "x"}).status_code == 400
    assert post(client, f"/admin/users/credits?id={customer.id}", {"amount": "50", "reason": "x"}).status_code == 302
    with app.app_context():
        assert db.session.get(User, customer.id).balance == 50


def test_admin_form_refuses_weak_passwords_and_bad_emails(app, client):
    with app.app_context():
        admin = make_user("admin")
    login(client, admin)
    weak = post(client, "/admin/users/new/", {"email": "new@example.com", "new_password": "password123",
                                              "role": "customer"})
    assert weak.status_code == 200 and "common password" in weak.get_data(as_text=True)
    bad = post(client, "/admin/users/new/", {"email": "<script>x</script>@example.com",
                                             "new_password": "a-brand-new-passphrase", "role": "customer"})
    assert bad.status_code == 200 and "Invalid email address" in bad.get_data(as_text=True)
    local = post(client, "/admin/users/new/", {"email": "someone@neurapix.local",
                                               "new_password": "a-brand-new-passphrase", "role": "customer"})
    assert local.status_code == 200 and "special-use" in local.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1


def test_a_bulk_delete_never_removes_the_last_admin(app, client):
    with app.app_context():
        owner, other = make_user("admin"), make_user("admin")
    login(client, owner)
    resp = post(client, "/admin/users/action/", {"action": "delete", "rowid": [other.id, owner.id],
                                                 "url": "/admin/users/"})
    assert resp.status_code == 302
    with app.app_context():
        assert len(db.session.scalars(sa.select(User.id).where(User.role == "admin")).all()) == 1


def test_a_forged_reset_link_is_refused(client):
    assert client.get("/reset-password/forged-token").status_code == 400
