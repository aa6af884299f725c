"""The analytics dashboard: rollups that equal a direct count of jobs and payments (late events and the
backfill included), the halves each role sees, date ranges, CSV downloads, page views and alerts."""
import csv
import io
import json
import threading
from datetime import date, datetime, time, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import (Alert, AuditLog, CreditLedger, Job, JobDaily, JobErrorDaily, PageViewDaily, Payment,
                        PaymentDaily, Provider)
from app.services import alerts, analytics, pageviews, settings
from tests.helpers import login, make_user

TODAY = datetime.now(timezone.utc).date()
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def at(day, hour=12, minute=0):
    return datetime.combine(day, time(hour, minute), timezone.utc)


def seed_jobs(user_id):
    """A mix over four days: done (timed), failed with errors, refunded, cancelled, one still queued."""
    specs = []
    for offset in range(4):
        day = TODAY - timedelta(days=offset)
        specs += [
            dict(function_key="enhance", provider_key="replicate", status="done", credits_charged=2,
                 created_at=at(day, 9), started_at=at(day, 9), finished_at=at(day, 9) + timedelta(milliseconds=800)),
            dict(function_key="enhance", provider_key="replicate", status="done", credits_charged=2,
                 created_at=at(day, 10), started_at=at(day, 10), finished_at=at(day, 10) + timedelta(seconds=7)),
            dict(function_key="upscale", provider_key="local", status="failed", credits_charged=3, refunded=True,
                 error="Provider timed out\nafter 30 s", created_at=at(day, 11), started_at=at(day, 11),
                 finished_at=at(day, 11, 1)),
            dict(function_key="upscale", provider_key=None, status="cancelled", credits_charged=3, refunded=True,
                 created_at=at(day, 23, 59)),
        ]
    specs.append(dict(function_key="enhance", provider_key="replicate", status="queued", credits_charged=2,
                      created_at=at(TODAY, 0, 5)))
    for spec in specs:
        db.session.add(Job(user_id=user_id, **spec))
    db.session.commit()


def seed_payments(user_ids):
    rows = [
        dict(user_id=user_ids[0], provider="stripe", status="succeeded", amount=1000, currency="USD", credits=100,
             plan_name="Starter", created_at=at(TODAY - timedelta(days=2))),
        dict(user_id=user_ids[0], provider="stripe", status="succeeded", amount=1000, currency="USD", credits=100,
             plan_name="Starter", created_at=at(TODAY - timedelta(days=1))),
        dict(user_id=user_ids[1], provider="paypal", status="refunded", amount=2500, currency="EUR", credits=300,
             refunded_credits=300, plan_name="Pro", created_at=at(TODAY - timedelta(days=1))),
        dict(user_id=user_ids[1], provider="manual", status="succeeded", amount=500, currency="USD", credits=50,
             created_at=at(TODAY)),
        dict(user_id=user_ids[1], provider="stripe", status="failed", amount=999, currency="USD", credits=10,
             created_at=at(TODAY)),
    ]
    for row in rows:
        db.session.add(Payment(**row))
    db.session.commit()


def direct_jobs():
    """The rollup's promise computed straight from the jobs table, in Python."""
    out = {}
    for job in db.session.scalars(sa.select(Job)).unique():
        key = (job.created_at.astimezone(timezone.utc).date(), job.function_key, job.provider_key or "", job.status)
        row = out.setdefault(key, {"jobs": 0, "credits": 0, "refunded_jobs": 0, "refunded_credits": 0,
                                   "latency_count": 0, "hist": [0] * (len(analytics.LATENCY_BOUNDS) + 1)})
        row["jobs"] += 1
        row["credits"] += job.credits_charged
        row["refunded_jobs"] += int(job.refunded)
        row["refunded_credits"] += job.credits_charged if job.refunded else 0
        if job.started_at and job.finished_at:
            ms = (job.finished_at - job.started_at).total_seconds() * 1000
            row["latency_count"] += 1
            row["hist"][next((i for i, b in enumerate(analytics.LATENCY_BOUNDS) if ms <= b),
                             len(analytics.LATENCY_BOUNDS))] += 1
    return out


def rolled_jobs():
    return {(r.day, r.function_key, r.provider_key, r.status): {
        "jobs": r.jobs, "credits": r.credits, "refunded_jobs": r.refunded_jobs, "refunded_credits": r.refunded_credits,
        "latency_count": r.latency_count, "hist": r.latency_hist} for r in db.session.scalars(sa.select(JobDaily))}


def direct_payments():
    out = {}
    payments = db.session.scalars(sa.select(Payment).order_by(Payment.created_at, Payment.id)).unique().all()
    seen = set()
    for p in payments:
        if p.status not in ("succeeded", "refunded"):
            continue
        key = (p.created_at.astimezone(timezone.utc).date(), p.provider, p.plan_name or "", p.currency)
        row = out.setdefault(key, [0, 0, 0, 0, 0, 0])
        refunded = p.status == "refunded"
        row[0] += 1
        row[1] += p.amount
        row[2] += int(refunded)
        row[3] += p.amount if refunded else 0
        row[4] += p.credits - p.refunded_credits
        row[5] += int(p.user_id not in seen)
        seen.add(p.user_id)
    return out


def rolled_payments():
    return {(r.day, r.gateway, r.plan_name, r.currency): [r.payments, r.gross, r.refunded_payments, r.refunds,
                                                          r.credits_sold, r.first_purchases]
            for r in db.session.scalars(sa.select(PaymentDaily))}


def age_writes():
    """Date every write an hour back, as if the refresh had last run then (past its safety overlap)."""
    for model in (Job, Payment):
        db.session.execute(sa.update(model).values(updated_at=datetime.now(timezone.utc) - timedelta(hours=1)))
    db.session.commit()


def test_rollups_equal_a_direct_count_through_late_events_and_backfill(app, ctx):
    customer, other = make_user(), make_user()
    seed_jobs(customer.id)
    seed_payments([customer.id, other.id])
    analytics.refresh_changed()
    assert rolled_jobs() == direct_jobs()
    assert rolled_payments() == direct_payments()
    errors = {(r.day, r.provider_key, r.error): r.jobs for r in db.session.scalars(sa.select(JobErrorDaily))}
    assert errors[(TODAY, "local", "Provider timed out")] == 1

    # Late events (once the first writes are older than the refresh's safety overlap): a job from three days ago is refunded now (a Core UPDATE, as the services do it), a queued
    # job finishes, a payment from yesterday is refunded; only those days are rebuilt.
    age_writes()
    old = db.session.scalars(sa.select(Job.id).where(Job.status == "done").order_by(Job.created_at)).first()
    db.session.execute(sa.update(Job).where(Job.id == old).values(status="failed", refunded=True, error="Late"))
    db.session.execute(sa.update(Job).where(Job.status == "queued").values(
        status="done", started_at=at(TODAY, 0, 6), finished_at=at(TODAY, 0, 6) + timedelta(seconds=40)))
    db.session.execute(sa.update(Payment).where(Payment.plan_name == "Starter", Payment.created_at >= at(
        TODAY - timedelta(days=1), 0)).values(status="refunded", refunded_credits=100))
    db.session.commit()
    rebuilt = analytics.refresh_changed()
    assert rebuilt == {"jobs": 2, "payments": 1}
    assert rolled_jobs() == direct_jobs()
    assert rolled_payments() == direct_payments()
    age_writes()
    assert analytics.refresh_changed() == {"jobs": 0, "payments": 0}  # nothing changed, nothing rebuilt

    # The backfill command rebuilds everything from scratch to the same figures, and drops rollups of
    # days whose jobs are gone.
    db.session.execute(sa.delete(JobDaily))
    db.session.execute(sa.delete(PaymentDaily))
    db.session.add(JobDaily(day=TODAY - timedelta(days=40), function_key="gone", provider_key="", status="done",
                            jobs=5, credits=5, refunded_jobs=0, refunded_credits=0, latency_count=0,
                            latency_ms_sum=0))
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["analytics-backfill"])
    assert result.exit_code == 0, result.output
    assert "Rebuilt 5 day(s) of job rollups" in result.output
    db.session.expire_all()
    assert rolled_jobs() == direct_jobs()
    assert rolled_payments() == direct_payments()


def test_percentiles_read_from_the_histogram():
    hist = [0] * (len(analytics.LATENCY_BOUNDS) + 1)
    hist[2], hist[5] = 90, 10  # 90 jobs ≤ 1 s, 10 jobs ≤ 10 s
    assert analytics.percentile(hist, 0.5) == 1000
    assert analytics.percentile(hist, 0.95) == 10_000
    assert analytics.percentile([0] * 13, 0.5) is None


def _dashboard(client, role, query=""):
    with client.application.app_context():
        user = make_user(role)
    login(client, user)
    return client.get(f"/admin/{query}")


@pytest.mark.parametrize("role, business", [("admin", True), ("viewer", True), ("support", False)])
def test_each_role_sees_its_half_of_the_dashboard(app, client, role, business):
    with app.app_context():
        seed_jobs(make_user().id)
        analytics.refresh_changed()
    resp = _dashboard(client, role)
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    for operational in ('id="queue"', 'id="panel-failures"', 'id="recent-jobs"', 'id="recent-failures"'):
        assert operational in html
    for part in ('id="figures"', 'id="panel-revenue_usd"', 'id="panel-functions"', 'id="alerts"',
                 'id="panel-page_views"', 'id="top-referrers"', 'id="provider-health"'):
        assert (part in html) is business, part
    resp = client.get("/admin/dashboard.csv?chart=functions")
    assert resp.status_code == (200 if business else 404)


def test_customers_and_visitors_are_kept_out(app, client):
    assert client.get("/admin/").status_code == 302
    assert client.get("/admin/dashboard.csv?chart=failures").status_code == 302
    assert _dashboard(client, "customer").status_code == 403
    assert client.get("/admin/dashboard.csv?chart=failures").status_code == 403


def _failures_rows(html):
    body = html.split('id="table-failures"', 1)[1].split("</tbody>", 1)[0]
    return body.count("<tr>") - 1  # minus the header row


def test_range_selection(app, client):
    with app.app_context():
        seed_jobs(make_user().id)
        analytics.refresh_changed()
    assert _failures_rows(_dashboard(client, "admin", "?range=7d").get_data(as_text=True)) == 7
    html = client.get("/admin/?range=today").get_data(as_text=True)
    assert _failures_rows(html) == 1
    start = (TODAY - timedelta(days=2)).isoformat()
    html = client.get(f"/admin/?range=custom&start={start}&end={TODAY.isoformat()}").get_data(as_text=True)
    assert _failures_rows(html) == 3
    assert f"{start} to {TODAY.isoformat()}" in html
    html = client.get("/admin/?range=12m").get_data(as_text=True)
    assert _failures_rows(html) == 12  # one row per month
    html = client.get(f"/admin/?range=custom&start={TODAY.isoformat()}&end={start}").get_data(as_text=True)
    assert "starts after it ends" in html and _failures_rows(html) == 30  # back to the default range


def test_csv_download_holds_the_chart_figures_and_is_audited(app, client):
    with app.app_context():
        customer = make_user()
        seed_jobs(customer.id)
        seed_payments([customer.id, make_user().id])
        analytics.refresh_changed()
    _dashboard(client, "admin")
    resp = client.get("/admin/dashboard.csv?chart=revenue_usd&range=7d")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True))))
    assert rows[0] == ["Day", "Gross (USD)", "Refunds (USD)", "Net (USD)"]
    by_day = {r[0]: r[1:] for r in rows[1:]}
    assert len(by_day) == 7
    assert by_day[(TODAY - timedelta(days=1)).isoformat()] == ["10.0", "0.0", "10.0"]
    assert by_day[TODAY.isoformat()] == ["5.0", "0.0", "5.0"]  # the failed payment is not revenue
    resp = client.get("/admin/dashboard.csv?chart=functions&range=7d")
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True))))
    # 9 enhance jobs (2 credits each, one still queued); 8 upscale jobs, every one refunded.
    assert rows[1:] == [["enhance", "9", "18", "52.9"], ["upscale", "8", "0", "47.1"]]
    with app.app_context():
        audits = db.session.scalars(sa.select(AuditLog).where(AuditLog.action == "export")).all()
        assert [a.entity for a in audits] == ["dashboard:revenue_usd", "dashboard:functions"]
        assert audits[0].new_values["filters"] == {"chart": "revenue_usd", "range": "7d"}
    assert client.get("/admin/dashboard.csv?chart=nope").status_code == 404


def test_page_views_counted_without_bots_or_personal_data(app, client):
    from app.services import queue

    with app.app_context():
        db.session.add(Provider(key="local", name="Local"))
        db.session.commit()
    for path in ("/", "/", "/pricing"):
        assert client.get(path, headers={"User-Agent": BROWSER_UA},
                          environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 200
    client.get("/", headers={"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"})
    client.get("/", headers={"User-Agent": "curl/8.5.0"})
    client.get("/", headers={"User-Agent": ""})  # no user agent at all: a script
    client.get("/no-such-page", headers={"User-Agent": BROWSER_UA})  # a 404 is no page view
    with app.app_context():
        conn = queue.redis_connection()
        stored = b"".join(k + b"".join(sum(conn.hgetall(k).items(), ())) for k in conn.scan_iter("pageviews*"))
        assert b"203.0.113.9" not in stored and b"Mozilla" not in stored
        assert pageviews.flush() == 3
        views = {(r.day, r.path): r.views for r in db.session.scalars(sa.select(PageViewDaily))}
        assert views == {(TODAY, "/"): 2, (TODAY, "/pricing"): 1}
        assert set(PageViewDaily.__table__.columns.keys()) == {"day", "path", "views"}
        assert pageviews.flush() == 0  # flushed once, counted once
    html = _dashboard(client, "admin", "?range=today").get_data(as_text=True)
    assert "<th scope=\"row\">/pricing</th><td>1</td>" in html


def test_staff_and_bots_do_not_count_and_user_agents_are_judged():
    assert pageviews.is_bot("Mozilla/5.0 (compatible; bingbot/2.0)")
    assert pageviews.is_bot("python-requests/2.31")
    assert pageviews.is_bot("Mozilla/5.0 HeadlessChrome/120.0")
    assert not pageviews.is_bot(BROWSER_UA)


class Receiver:
    """A real HTTP server on 127.0.0.1 standing in for Slack's incoming webhook."""

    def __init__(self):
        self.posts = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts.append((self.headers["Content-Type"], json.loads(body)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/secret"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_alert_fires_once_per_incident_and_resolves(app, ctx, receiver):
    settings.update({"alerts.webhook_url": receiver.url, "alerts.webhook_internal": True,
                     "alerts.provider_failure_rate": 50, "alerts.provider_min_jobs": 4})
    customer = make_user()
    now = datetime.now(timezone.utc)
    for i in range(4):
        db.session.add(Job(user_id=customer.id, function_key="enhance", provider_key="replicate",
                           status="failed", error="boom", created_at=now - timedelta(minutes=i + 1)))
    db.session.commit()
    opened, resolved = alerts.check()
    assert [(a.kind, a.subject) for a in opened] == [("provider_failure_rate", "replicate")] and not resolved
    # More failures of the same incident: nothing new is posted.
    db.session.add(Job(user_id=customer.id, function_key="enhance", provider_key="replicate", status="failed",
                       created_at=now))
    db.session.commit()
    assert alerts.check() == ([], [])
    assert len(receiver.posts) == 1
    content_type, body = receiver.posts[0]
    assert content_type == "application/json" and body["state"] == "opened"
    assert "replicate" in body["text"] and body["kind"] == "provider_failure_rate"

    # The provider recovers: enough successes bring the rate under the threshold; the incident resolves once.
    for _ in range(6):
        db.session.add(Job(user_id=customer.id, function_key="enhance", provider_key="replicate", status="done",
                           created_at=now))
    db.session.commit()
    opened, resolved = alerts.check()
    assert not opened and [a.subject for a in resolved] == ["replicate"]
    assert alerts.check() == ([], [])
    assert [p[1]["state"] for p in receiver.posts] == ["opened", "resolved"]
    incident = db.session.scalars(sa.select(Alert)).one()
    assert incident.resolved_at is not None and incident.open_key is None and incident.notify_error is None


def test_other_alert_conditions_and_a_refused_webhook(app, ctx, receiver, loopback_only):
    settings.update({"alerts.webhook_url": receiver.url, "alerts.credit_adjustment": 1000,
                     "alerts.queue_wait_minutes": 5})
    staff, customer = make_user("support"), make_user()
    db.session.add(Provider(key="runpod", name="RunPod", last_status="error", last_error="401 Unauthorized"))
    db.session.add(Job(user_id=customer.id, function_key="enhance", status="queued",
                       created_at=datetime.now(timezone.utc) - timedelta(minutes=30)))
    db.session.add(CreditLedger(user_id=customer.id, amount=5000, balance_after=5000, kind="adjust",
                                reason="Goodwill", actor_id=staff.id))
    db.session.add(CreditLedger(user_id=customer.id, amount=10, balance_after=5010, kind="adjust", reason="Small",
                                actor_id=staff.id))
    db.session.commit()
    opened, _ = alerts.check()
    assert sorted(a.kind for a in opened) == ["credit_adjustment", "provider_health", "queue_wait"]
    # The webhook is on 127.0.0.1 and the owner has not allowed an internal address: the guarded fetcher
    # refuses it, the alert says so, nothing reached the receiver.
    assert receiver.posts == []
    assert all("internal address" in a.notify_error for a in opened)
    adjustment = next(a for a in opened if a.kind == "credit_adjustment")
    assert adjustment.resolved_at is not None and "+5,000" in adjustment.message
    assert alerts.check() == ([], [])  # the same adjustment is never alerted twice


def test_page_views_without_redis_are_batched_in_memory(app, client, monkeypatch):
    """make run has no Redis: views wait in memory and a timer thread writes them in one batch."""
    import time as clock

    monkeypatch.setitem(app.config, "REDIS_URL", None)
    monkeypatch.setitem(app.config, "PAGEVIEW_FLUSH_SECONDS", 0.2)
    for path in ("/pricing", "/pricing", "/"):
        assert client.get(path, headers={"User-Agent": BROWSER_UA}).status_code == 200
    client.get("/", headers={"User-Agent": "Slackbot-LinkExpanding 1.0"})
    deadline = clock.monotonic() + 10
    with app.app_context():
        while clock.monotonic() < deadline:
            views = {r.path: r.views for r in db.session.scalars(sa.select(PageViewDaily))}
            if sum(views.values()) >= 3:
                break
            db.session.rollback()
            clock.sleep(0.05)
        assert views == {"/pricing": 2, "/": 1}


def test_queue_panel_reads_rq_and_provider_cost_is_shown(app, client):
    """The queue panel counts what really waits in RQ; a provider whose config states cost_per_job has a cost."""
    from rq import Queue

    from app.services import queue

    with app.app_context():
        Queue("neurapix-default", connection=queue.redis_connection()).enqueue("app.tasks.process_job", 999_999)
        db.session.add(Provider(key="replicate", name="Replicate", config={"cost_per_job": 0.01}))
        db.session.commit()
        seed_jobs(make_user().id)
        analytics.refresh_changed()
    html = _dashboard(client, "support").get_data(as_text=True)
    panel = html.split('id="queue"', 1)[1].split("</section>", 1)[0]
    assert "Workers alive: 0" in panel
    assert '<th scope="row">neurapix-default</th><td>1</td><td>0</td>' in panel
    resp = client.get("/admin/dashboard.csv?chart=failures&range=7d")
    assert resp.status_code == 200  # support may download the operational half
    assert resp.get_data(as_text=True).startswith("Day,Jobs finished,Failed,Failure rate (%)")
    owner = app.test_client()
    _dashboard(owner, "admin")
    rows = list(csv.reader(io.StringIO(owner.get("/admin/dashboard.csv?chart=providers&range=7d")
                                       .get_data(as_text=True))))
    assert rows[0][-1] == "Cost"
    by_provider = {r[0]: r for r in rows[1:]}
    # replicate: 8 jobs finished (all done) at 0.01 each; local states no cost.
    assert by_provider["replicate"][1:3] == ["9", "0.0"] and by_provider["replicate"][-1] == "0.08"
    assert by_provider["local"][2] == "100.0" and by_provider["local"][-1] == ""
