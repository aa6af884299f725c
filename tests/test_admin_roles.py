"""The role matrix, generated from the views registered on the admin.

Every ModelView × operation (list, details, create, edit, delete, each action) × role
(admin, support, viewer, customer, anonymous) is tried for real. A view added later is covered
without editing this file; what support may do is the product's promise written out below.
"""
import pytest
import sqlalchemy as sa
from flask_admin.contrib.sqla import ModelView

from app.extensions import db
from app.models import AuditLog, User
from app.services.audit import snapshot
from tests.helpers import flashes, form_values, login, make_user, post
from tests.factories import make_row

ROLES = ("admin", "support", "viewer", "customer", "anonymous")
# The promise for support: users (not their role), jobs and payments (and the orders they pay), plus
# the ledger it needs to answer credit questions; nothing else. Viewer: read-only everywhere. Admin: all the
# view offers. Credits and ban (list rows and the bulk menu) open their forms for customers.
SUPPORT_MAY = {"users": {"list", "edit", "action:credits", "action:ban"}, "jobs": {"list", "action:retry", "action:cancel"},
               "payments": {"list"}, "orders": {"list"}, "ledger": {"list"}}
# Views for the admin alone: support and viewer get 403 even for reading (a backup holds every row).
ADMIN_ONLY = {"backups"}


def model_views(app):
    admin = app.extensions["neurapix_admin"]
    return [v for v in admin._views if isinstance(v, ModelView)]


def _offered(app, view, op):
    """What the view offers its most powerful user (an admin): its own shape, not a permission."""
    admin_user = make_user("admin")
    with app.test_request_context():
        from flask_login import login_user

        login_user(admin_user)
        if op == "create":
            return view.can_create
        if op == "edit":
            return view.can_edit
        if op == "delete":
            return view.can_delete
        if op.startswith("export:"):
            return view.can_export and op.split(":", 1)[1] in view.export_types
        if op.startswith("action:"):
            return view.is_action_allowed(op.split(":", 1)[1])
        return True


def allowed(role, endpoint, op):
    if role == "admin":
        return True
    if endpoint in ADMIN_ONLY:
        return False
    if role == "viewer":
        return op in ("list", "details")
    if role == "support":
        granted = SUPPORT_MAY.get(endpoint, set())
        return op in granted or (op == "details" and "list" in granted)
    return False


def _state(view):
    return {row.id: snapshot(row) for row in db.session.scalars(sa.select(view.model))}


def _actions(view):
    return [name for name, _text in view._actions] if view._actions else []


def _cases(app_views):
    for view in app_views:
        ops = (["list", "details", "create", "edit", "delete"] + [f"export:{t}" for t in view.export_types]
               + [f"action:{a}" for a in _actions(view)])
        for op in ops:
            for role in ROLES:
                yield view.endpoint, op, role


@pytest.fixture(scope="module")
def views(app):
    return {v.endpoint: v for v in model_views(app)}


def pytest_generate_tests(metafunc):
    if "matrix_case" in metafunc.fixturenames:
        from app import create_app

        # Collection needs the registered views; a throwaway app (no database touched) gives them.
        app = create_app("testing")
        cases = list(_cases(model_views(app)))
        metafunc.parametrize("matrix_case", cases, ids=[f"{e}-{o}-{r}" for e, o, r in cases])


def _db(app):
    """Database work happens in its own app context: requests must not share one (g would leak)."""
    return app.app_context()


def test_role_matrix(app, client, views, matrix_case):
    endpoint, op, role = matrix_case
    view = views[endpoint]
    with _db(app):
        offered = _offered(app, view, op)
        row_id = make_row(view.model).id
        if role != "anonymous":
            login(client, make_user(role))
        before = _state(view)
    expect = allowed(role, endpoint, op) and offered
    base = f"/admin/{endpoint}/"

    if op == "list":
        resp = client.get(base)
    elif op == "details":
        resp = client.get(f"{base}details/?id={row_id}")
    elif op == "create":
        resp = client.get(f"{base}new/")
        if not expect:
            # A forged POST must not create either.
            forged = post(client, f"{base}new/", {"name": "forged", "key": "forged", "email": "forged@x.io"})
            assert forged.status_code in (302, 403)
    elif op == "edit":
        resp = client.get(f"{base}edit/?id={row_id}")
        if resp.status_code == 200 and expect:
            # Submit the form exactly as the page rendered it: a round trip must save cleanly.
            data = form_values(resp.get_data(as_text=True))
            saved = client.post(f"{base}edit/?id={row_id}", data=data)
            assert saved.status_code == 302, flashes(saved.get_data(as_text=True))
            assert not flashes(client.get(base).get_data(as_text=True))
        elif not expect:
            forged = post(client, f"{base}edit/?id={row_id}", {"name": "forged"})
            assert forged.status_code in (302, 403)
    elif op == "delete":
        resp = post(client, f"{base}delete/", {"id": row_id, "url": base})
    elif op.startswith("export:"):
        resp = client.get(f"{base}export/{op.split(':', 1)[1]}/")
        resp.get_data()  # the rows are read as the download streams
    else:
        action = op.split(":", 1)[1]
        resp = post(client, f"{base}action/", {"action": action, "rowid": [row_id], "url": base})

    if role == "anonymous":
        assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    elif not expect:
        assert resp.status_code == 403, f"{role} {op} {endpoint}: {resp.status_code}"
    else:
        assert resp.status_code in (200, 302), f"{role} {op} {endpoint}: {resp.status_code}"

    with _db(app):
        after = _state(view)
        if op.startswith("export:") and view.model is AuditLog:
            # An export is audited: the audit log gains that one row and nothing else changes.
            exported = [i for i in after if i not in before]
            assert len(exported) == (1 if expect else 0)
            assert all(after[i]["action"] == "export" for i in exported)
            after = {i: row for i, row in after.items() if i in before}
    if expect and op in ("delete", "action:delete"):
        assert row_id not in after
    elif not expect or op in ("list", "details", "create") or op.startswith("export:"):
        # Reading never writes; a refused write changes nothing. (Allowed edits and actions may.)
        assert after == before, f"{role} {op} changed {endpoint}"


@pytest.mark.parametrize("role,status", [("admin", 200), ("support", 200), ("viewer", 200), ("customer", 403)])
def test_dashboard_is_for_staff_only(app, client, role, status):
    with app.app_context():
        login(client, make_user(role))
    assert client.get("/admin/").status_code == status


def test_dashboard_sends_anonymous_to_login(client):
    resp = client.get("/admin/")
    assert resp.status_code == 302 and "/login?next=/admin/" in resp.headers["Location"]


def test_support_cannot_change_a_role(app, client):
    with app.app_context():
        support, customer = make_user("support"), make_user("customer")
        login(client, support)
        customer_id = customer.id
    page = client.get(f"/admin/users/edit/?id={customer_id}").get_data(as_text=True)
    assert 'name="role"' not in page
    data = form_values(page)
    data["role"], data["email"] = "admin", "Renamed@Example.com"
    assert client.post(f"/admin/users/edit/?id={customer_id}", data=data).status_code == 302
    with app.app_context():
        customer = db.session.get(User, customer_id)
        assert customer.role == "customer" and customer.email == "renamed@example.com"
