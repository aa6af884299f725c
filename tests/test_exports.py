"""Exports of every admin list as CSV and JSON Lines, and their CLI twin `flask export`: filters honoured,
formulas neutralised, secrets left out, one audit row per export, memory flat over 200,000 jobs."""
import csv
import gc
import io
import json
import tracemalloc
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, CreditLedger, Job, JobLog, Order, Payment
from tests import pipeline as p
from tests.helpers import login, make_user

LISTS = {"users": "users", "payments": "payments", "jobs": "jobs", "job_logs": "job-logs", "ledger": "ledger",
         "audit": "audit", "orders": "orders"}
JAN, FEB = datetime(2026, 1, 15, 12, tzinfo=timezone.utc), datetime(2026, 2, 15, 12, tzinfo=timezone.utc)


@pytest.fixture
def data(app):
    """Rows in every exported list, with text a spreadsheet would run, and a customer with secrets set."""
    with app.app_context():
        admin = make_user("admin", email="owner@example.com")
        customer = make_user("customer", email="=cmd@example.com", totp_secret="TOTPSECRETVALUE234567",
                             recovery_codes=["recovery-code-1"])
        fn = p.local_function()
        failed = Job(user_id=customer.id, function_id=fn.id, function_key="enhance", provider_key="local",
                     status="failed", error="@SUM(1+1)", created_at=JAN)
        db.session.add_all([failed, Job(user_id=customer.id, function_id=fn.id, function_key="enhance",
                                        provider_key="local", status="done", created_at=JAN),
                            Job(user_id=customer.id, function_id=fn.id, function_key="enhance",
                                provider_key="local", status="failed", created_at=FEB)])
        db.session.flush()
        db.session.add(JobLog(job_id=failed.id, level="error", message="=HYPERLINK(\"http://evil.example\")",
                              provider_key="local", attempt=1, latency_ms=12))
        db.session.add(CreditLedger(user_id=customer.id, amount=-5, balance_after=0, kind="adjustment",
                                    reason="-2+3 refund", actor_id=admin.id))
        db.session.add(Payment(user_id=customer.id, provider="manual", status="succeeded", amount=999,
                               currency="USD", credits=10, external_id="+ext"))
        db.session.add(Order(user_id=customer.id, plan_name="=Starter", gateway="stripe", amount=500,
                             currency="USD", credits=50, status="pending"))
        db.session.add(AuditLog(actor_email="=1+1", action="update", entity="User", entity_id="1"))
        db.session.commit()
        return admin, db.session.get(type(customer), customer.id).password_hash


def _csv(body):
    return list(csv.reader(io.StringIO(body)))


def _export(client, endpoint, fmt, query=""):
    resp = client.get(f"/admin/{endpoint}/export/{fmt}/{query}")
    assert resp.status_code == 200, resp.status_code
    assert resp.mimetype == {"csv": "text/csv", "jsonl": "application/x-ndjson"}[fmt]
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert resp.headers["Content-Disposition"].rstrip('"').endswith(f".{fmt}")
    return resp.get_data(as_text=True)


def _exports_audited(app):
    with app.app_context():
        return [(r.actor_email, r.entity, r.new_values) for r in
                db.session.scalars(sa.select(AuditLog).where(AuditLog.action == "export").order_by(AuditLog.id))]


SECRET_TEXTS = ("TOTPSECRETVALUE234567", "recovery-code-1", "password_hash", "totp_secret", "recovery_codes")


@pytest.mark.parametrize("endpoint", list(LISTS))
def test_every_list_exports_as_csv_with_formulas_neutralised_and_no_secrets(app, client, data, endpoint):
    admin, password_hash = data
    login(client, admin)
    body = _export(client, endpoint, "csv")
    rows = _csv(body)
    assert len(rows) >= 2
    cells = [c for row in rows[1:] for c in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r") or (c[:1] == "-" and not c[1:].isdigit())]
    assert any(c.startswith("'") for c in cells)  # each list holds one dangerous text, now inert
    for text in (*SECRET_TEXTS, password_hash):
        assert text not in body


@pytest.mark.parametrize("endpoint", list(LISTS))
def test_every_list_exports_as_json_lines_with_values_as_stored_and_no_secrets(app, client, data, endpoint):
    admin, password_hash = data
    login(client, admin)
    body = _export(client, endpoint, "jsonl")
    objects = [json.loads(line) for line in body.splitlines()]
    assert objects and all(isinstance(o, dict) for o in objects)
    values = [v for o in objects for v in o.values()]
    # JSON Lines is data, not a spreadsheet: text stays exactly as stored, numbers stay numbers.
    assert any(isinstance(v, str) and v[:1] in "=+-@" for v in values)
    for text in (*SECRET_TEXTS, password_hash):
        assert text not in body


def test_an_export_follows_the_lists_filters_search_and_sort(app, client, data):
    login(client, data[0])
    view = app.extensions["neurapix_admin"]
    jobs = next(v for v in view._views if v.endpoint == "jobs")
    status_eq = next(i for i, f in enumerate(jobs._filters)
                     if f.column.key == "status" and str(f.operation()) == "equals")
    objects = [json.loads(line) for line in
               _export(client, "jobs", "jsonl", f"?flt0_{status_eq}=failed&sort=0").splitlines()]
    assert [o["status"] for o in objects] == ["failed", "failed"]
    assert [o["id"] for o in objects] == sorted(o["id"] for o in objects)  # sorted by id, ascending
    rows = _csv(_export(client, "users", "csv", "?search=owner"))
    assert [r[1] for r in rows[1:]] == ["owner@example.com"]


def test_each_export_writes_one_audit_row_naming_the_list_format_and_filters(app, client, data):
    login(client, data[0])
    _export(client, "payments", "jsonl", "?search=ext")
    _export(client, "audit", "csv")
    audited = _exports_audited(app)
    assert audited[0] == ("owner@example.com", "payments", {
        "list": "payments", "format": "jsonl",
        "filters": {"search": "ext", "filters": [], "sort": None, "desc": False}})
    assert [(a[0], a[1], a[2]["format"]) for a in audited] == [("owner@example.com", "payments", "jsonl"),
                                                              ("owner@example.com", "audit", "csv")]


@pytest.mark.parametrize("role", ["support", "viewer", "customer"])
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_only_admins_export_any_list(app, client, role, fmt):
    with app.app_context():
        login(client, make_user(role))
    for endpoint in LISTS:
        assert client.get(f"/admin/{endpoint}/export/{fmt}/").status_code == 403, endpoint
    assert _exports_audited(app) == []


def test_an_unknown_export_format_exports_nothing(app, client, data):
    login(client, data[0])
    assert client.get("/admin/jobs/export/xlsx/").status_code == 302
    assert _exports_audited(app) == []


# --- flask export ---


def _cli(app, *args):
    return app.test_cli_runner().invoke(args=["export", *args])


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_the_cli_writes_what_the_admin_downloads_for_the_same_filters(app, client, data, fmt):
    login(client, data[0])
    jobs = next(v for v in app.extensions["neurapix_admin"]._views if v.endpoint == "jobs")
    between = next(i for i, f in enumerate(jobs._filters)
                   if f.column.key == "created_at" and str(f.operation()) == "between")
    status_eq = next(i for i, f in enumerate(jobs._filters)
                     if f.column.key == "status" and str(f.operation()) == "equals")
    admin = _export(client, "jobs", fmt, f"?flt0_{between}=2026-01-01+00:00:00+to+2026-01-31+23:59:59"
                                         f"&flt1_{status_eq}=failed")
    result = _cli(app, "jobs", "--format", fmt, "--since", "2026-01-01", "--until", "2026-01-31",
                  "--status", "failed")
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.decode() == admin
    assert len(admin.strip().splitlines()) == (2 if fmt == "csv" else 1)  # the January failure only
    assert _exports_audited(app)[-1] == ("cli", "jobs", {
        "list": "jobs", "format": fmt, "filters": {"since": "2026-01-01", "until": "2026-01-31", "status": "failed"}})


@pytest.mark.parametrize("endpoint,name", list(LISTS.items()))
def test_the_cli_exports_every_list_like_the_admin(app, client, data, endpoint, name, tmp_path):
    login(client, data[0])
    target = tmp_path / "out.csv"
    result = _cli(app, name, "--format", "csv", "--output", str(target))
    assert result.exit_code == 0, result.output
    cli = target.read_bytes().decode()
    admin = _export(client, endpoint, "csv").splitlines(keepends=True)
    if endpoint == "audit":
        # Each export is audited before its rows are read: the admin's list also shows its own, newest row.
        assert admin[1].split(",")[1:5] == ["owner@example.com", "export", "audit", ""]
        del admin[1]
    assert cli == "".join(admin)


def test_a_filter_the_list_does_not_have_is_refused_and_nothing_is_audited(app, data):
    result = _cli(app, "users", "--status", "active")
    assert result.exit_code != 0 and "no status" in result.output
    assert _exports_audited(app) == []
    assert _cli(app, "jobs", "--since", "yesterday").exit_code != 0


# --- memory ---


def _consume(response):
    lines = size = 0
    for chunk in response.response:
        lines += chunk.count(b"\n")
        size += len(chunk)
    response.close()
    return lines, size


def test_an_export_reads_its_rows_through_a_server_side_cursor(app, client, data):
    # The driver's own buffer is invisible to tracemalloc: prove the rows never sit there all at once.
    login(client, data[0])
    reads = []

    def spy(_conn, cursor, statement, _params, _context, _many):
        if statement.lstrip().upper().startswith("SELECT") and "FROM jobs" in statement:
            reads.append(cursor.name is not None)  # psycopg2: a named cursor lives on the server

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", spy)
    try:
        for fmt in ("csv", "jsonl"):
            _export(client, "jobs", fmt)
        assert _cli(app, "jobs", "--format", "jsonl").exit_code == 0
    finally:
        sa.event.remove(engine, "before_cursor_execute", spy)
    assert reads.count(True) == 3  # one streamed read per export (the list's COUNT(*) is not one)


def _insert_jobs(user_id, start, stop):
    db.session.execute(sa.text(
        "INSERT INTO jobs (user_id, function_key, provider_key, status, input_meta, credits_charged, refunded,"
        " attempts, claims, cancel_requested, error, created_at) "
        "SELECT :uid, 'enhance', 'local', 'done', '{}'::jsonb, 1, false, 1, 1, false, "
        "'=error number ' || n, now() - n * interval '1 second' FROM generate_series(:start, :stop) AS n"),
        {"uid": user_id, "start": start, "stop": stop})
    db.session.commit()


def _peak(client, fmt, rows):
    gc.collect()
    tracemalloc.start()
    try:
        lines, size = _consume(client.get(f"/admin/jobs/export/{fmt}/", buffered=False))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert lines == rows + (fmt == "csv") and size > rows * 80
    return peak


def test_exporting_200000_jobs_keeps_memory_flat(app, client):
    with app.app_context():
        admin, customer = make_user("admin", email="owner@example.com"), make_user("customer")
        _insert_jobs(customer.id, 1, 20_000)
    login(client, admin)
    small = {fmt: _peak(client, fmt, 20_000) for fmt in ("csv", "jsonl")}
    with app.app_context():
        _insert_jobs(customer.id, 20_001, 200_000)
    large = {fmt: _peak(client, fmt, 200_000) for fmt in ("csv", "jsonl")}
    print("export peak (tracemalloc):", {f"{fmt} {n}": f"{peak / 2**20:.2f} MiB" for n, peaks in
                                         (("20k", small), ("200k", large)) for fmt, peak in peaks.items()})
    for fmt in ("csv", "jsonl"):
        # Ten times the rows, about the same peak: one batch is held, never the whole list (about 19 MB of CSV).
        assert large[fmt] < small[fmt] * 1.5 + 2**20
        assert large[fmt] < 16 * 2**20
