"""The audit trail's completeness: relationship changes, the real client address behind a trusted proxy, and
admin-only CSV exports of audit, jobs, ledger, payments and users that spreadsheets cannot run."""
import csv
import io
import re

import pytest
import sqlalchemy as sa

import config
from app.extensions import db
from app.models import AuditLog, CreditLedger, Job, Payment, Plan
from app.services import exports
from tests import pipeline as p
from tests.helpers import form_values, login, make_user


def _rows(app, entity):
    with app.app_context():
        return [(r.action, r.old_values, r.new_values) for r in
                db.session.scalars(sa.select(AuditLog).where(AuditLog.entity == entity).order_by(AuditLog.id))]


def _form(client, url):
    """The edit form as a browser submits it (browsers drop the newline WTForms puts first in a textarea)."""
    data = form_values(client.get(url).get_data(as_text=True))
    for key in ("description",):
        if key in data:
            data[key] = data[key].lstrip("\r\n")
    return data


def _admin(app, client):
    with app.app_context():
        admin = make_user("admin")
    login(client, admin)
    return admin


def test_switching_a_functions_provider_is_audited(app, client):
    with app.app_context():
        fn = p.local_function()
        other = p.add_provider("local", name="Other", config={"timeout": 30})
        fn_id, before, after = fn.id, fn.provider_id, other.id
    _admin(app, client)
    data = _form(client, f"/admin/functions/edit/?id={fn_id}")
    data["provider"] = str(after)
    assert client.post(f"/admin/functions/edit/?id={fn_id}", data=data).status_code == 302
    assert _rows(app, "AIFunction") == [("update", {"provider": before}, {"provider": after})]


def test_assigning_a_plan_to_a_user_is_audited(app, client):
    with app.app_context():
        plan = Plan(name="Acme B2B", kind="monthly", price=99900, credits=10000, hidden=True)
        db.session.add(plan)
        db.session.commit()
        customer, plan_id = make_user("customer"), plan.id
    _admin(app, client)
    data = form_values(client.get(f"/admin/users/edit/?id={customer.id}").get_data(as_text=True))
    data["plan"] = str(plan_id)
    assert client.post(f"/admin/users/edit/?id={customer.id}", data=data).status_code == 302
    data = form_values(client.get(f"/admin/users/edit/?id={customer.id}").get_data(as_text=True))
    data["plan"] = "__None"
    assert client.post(f"/admin/users/edit/?id={customer.id}", data=data).status_code == 302
    assert _rows(app, "User") == [("update", {"plan": None}, {"plan": plan_id}),
                                  ("update", {"plan": plan_id}, {"plan": None})]


def test_fallback_chain_rows_are_audited_when_added_changed_and_removed(app, client):
    with app.app_context():
        fn = p.local_function()
        backup = p.add_provider("local", name="Backup", config={"timeout": 30})
        spare = p.add_provider("local", name="Spare", config={"timeout": 30})
        fn_id, backup_id, spare_id = fn.id, backup.id, spare.id
    _admin(app, client)
    url = f"/admin/functions/edit/?id={fn_id}"
    data = _form(client, url)
    data.update({"fallbacks-0-position": "1", "fallbacks-0-provider": str(backup_id),
                 "fallbacks-0-provider_config": '{"operation": "denoise"}'})
    assert client.post(url, data=data).status_code == 302

    data = _form(client, url)
    step_id = int(data["fallbacks-0-id"])
    data["fallbacks-0-provider"] = str(spare_id)
    assert client.post(url, data=data).status_code == 302

    data = _form(client, url)
    data["del-fallbacks-0"] = "y"
    assert client.post(url, data=data).status_code == 302

    added, switched, removed = _rows(app, "AIFunction")
    first = {"id": None, "position": 1, "provider": backup_id, "provider_config": {"operation": "denoise"}}
    assert added == ("update", {"fallbacks": []}, {"fallbacks": [first]})
    saved = {**first, "id": step_id}
    assert switched == ("update", {"fallbacks": [saved]}, {"fallbacks": [{**saved, "provider": spare_id}]})
    assert removed == ("update", {"fallbacks": [{**saved, "provider": spare_id}]}, {"fallbacks": []})


def test_a_new_function_records_its_provider_and_fallback_chain(app, client):
    with app.app_context():
        primary = p.add_provider("local", name="Primary", config={"timeout": 30})
        backup = p.add_provider("local", name="Backup", config={"timeout": 30})
        primary_id, backup_id = primary.id, backup.id
    _admin(app, client)
    data = _form(client, "/admin/functions/new/")
    for key, value in {"key": "sharpen", "name": "Sharpen", "provider": str(primary_id), "price_per_use": "2",
                       "max_file_size": "10485760", "priority": "0", "provider_config": '{"operation": "enhance"}',
                       "fallbacks-0-position": "1", "fallbacks-0-provider": str(backup_id),
                       "fallbacks-0-provider_config": "{}"}.items():
        data[key] = value
    data.setlist("allowed_formats", ["PNG"])
    resp = client.post("/admin/functions/new/", data=data)
    assert resp.status_code == 302, re.findall(r"<li>([^<]*)</li>",
                                                resp.get_data(as_text=True))
    ((action, _old, new),) = _rows(app, "AIFunction")
    assert action == "create" and new["provider_id"] == primary_id
    assert [step["provider"] for step in new["fallbacks"]] == [backup_id]


# --- the client address ---


@pytest.fixture
def proxied_app(app, monkeypatch):
    """Another web server on the same database, behind one trusted proxy (TRUSTED_PROXIES=1)."""
    from app import create_app

    monkeypatch.setattr(config.TestingConfig, "TRUSTED_PROXIES", 1)
    return create_app("testing")


def _edit_plan_name(instance, headers, remote="10.0.0.5"):
    client = instance.test_client()
    with instance.app_context():
        plan = Plan(name="Starter", kind="pack", price=500, credits=50)
        db.session.add(plan)
        db.session.commit()
        login(client, make_user("admin"))
        plan_id = plan.id
    env = {"REMOTE_ADDR": remote}
    page = client.get(f"/admin/plans/edit/?id={plan_id}", headers=headers, environ_overrides=env)
    data = form_values(page.get_data(as_text=True))
    data["name"] = "Starter+"
    assert client.post(f"/admin/plans/edit/?id={plan_id}", data=data, headers=headers,
                       environ_overrides=env).status_code == 302
    with instance.app_context():
        return db.session.scalars(sa.select(AuditLog.ip).where(AuditLog.entity == "Plan")).one()


def test_the_audit_ip_is_the_client_the_trusted_proxy_saw(proxied_app):
    # The client forged an entry; the proxy appended the address it really saw. Only that one is believed.
    headers = {"X-Forwarded-For": "198.51.100.66, 203.0.113.7"}
    assert _edit_plan_name(proxied_app, headers) == "203.0.113.7"


def test_without_trusted_proxies_x_forwarded_for_is_ignored(app):
    assert _edit_plan_name(app, {"X-Forwarded-For": "203.0.113.7"}) == "10.0.0.5"


# --- exports ---


@pytest.fixture
def history(app):
    """One row of each exported kind, with text a spreadsheet would run as a formula."""
    with app.app_context():
        admin = make_user("admin", email="owner@example.com")
        customer = make_user("customer", email="=HYPERLINK(\"http://evil.example\")@example.com")
        fn = p.local_function()
        db.session.add(Job(user_id=customer.id, function_id=fn.id, function_key="+cmd|' /C calc'!A0",
                           provider_key="local", status="failed", error="@SUM(1+1)"))
        db.session.add(CreditLedger(user_id=customer.id, amount=-5, balance_after=0, kind="adjustment",
                                    reason="-2+3 refund", actor_id=admin.id))
        db.session.add(Payment(user_id=customer.id, provider="manual", status="succeeded", amount=999, currency="USD",
                               credits=10, note="\tTab first", external_id="\rcr"))
        db.session.add(AuditLog(actor_email="=1+1", action="update", entity="User", entity_id="1",
                                new_values={"email": "=evil"}, ip="203.0.113.7"))
        db.session.commit()
        return admin


def _csv(resp):
    assert resp.status_code == 200 and resp.mimetype == "text/csv", resp.status_code
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    return list(csv.reader(io.StringIO(resp.get_data(as_text=True))))


@pytest.mark.parametrize("endpoint,dangerous", [
    ("audit", ["'=1+1"]),
    ("jobs", ["'+cmd|' /C calc'!A0"]),
    ("ledger", ["'-2+3 refund"]),
    ("payments", ["'\rcr"]),
    ("users", ["'=hyperlink(\"http://evil.example\")@example.com"]),
])
def test_admins_export_history_as_csv_with_formulas_neutralised(app, client, history, endpoint, dangerous):
    login(client, history)
    rows = _csv(client.get(f"/admin/{endpoint}/export/csv/"))
    cells = [c for row in rows[1:] for c in row]
    assert len(rows) >= 2
    for cell in dangerous:
        assert cell in cells
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r") or (c[:1] == "-" and not c[1:].isdigit())]


def test_an_export_follows_the_lists_filters(app, client, history):
    login(client, history)
    rows = _csv(client.get("/admin/users/export/csv/?search=owner"))
    assert [r[1] for r in rows[1:]] == ["owner@example.com"]


@pytest.mark.parametrize("role", ["support", "viewer", "customer"])
@pytest.mark.parametrize("endpoint", ["audit", "jobs", "ledger", "payments", "users"])
def test_only_admins_export(app, client, role, endpoint):
    with app.app_context():
        login(client, make_user(role))
    assert client.get(f"/admin/{endpoint}/export/csv/").status_code == 403


@pytest.mark.parametrize("value,cell", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1+1", "'-1+1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
    ("\rx", "'\rx"), ("plain", "plain"), (-5, "-5"), (3, "3"), (None, ""), (True, "yes"),
    ({"b": 1, "a": "=x"}, '{"a": "=x", "b": 1}'),
])
def test_the_one_csv_writer_escapes_formula_starts_and_keeps_numbers(value, cell):
    assert exports.cell(value) == cell


def test_csv_lines_stream_one_row_at_a_time():
    lines = exports.csv_lines(["a", "b"], iter([[1, "=x"], [2, "y"]]))
    assert next(lines) == "a,b\r\n" and next(lines) == "1,'=x\r\n" and next(lines) == "2,y\r\n"


def test_a_user_email_in_an_audit_export_is_escaped_too(app, client, history):
    login(client, history)
    rows = _csv(client.get("/admin/audit/export/csv/"))
    header = rows[0]
    new_values = [r[header.index("New Values")] for r in rows[1:]]
    assert '{"email": "=evil"}' in new_values  # JSON starts with "{", safe as it is
