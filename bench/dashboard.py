"""Benchmark: the admin dashboard (reads rollups) at 10,000 and 1,000,000 jobs, against a scan of the jobs table
for the same figures in the same run. The goal (issue 12): the dashboard at 1M jobs within 1.5× its time at 10k.

Run on demand (not part of `make test`): .venv/bin/python bench/dashboard.py [SIZES…]   (default 10000 1000000).
Needs PostgreSQL on 127.0.0.1; makes and drops its own database. Jobs are spread over the last 365 days (with
users = jobs/10, payments = jobs/20), made by INSERT … SELECT generate_series and written over an hour ago (a
quiet system: the dashboard's own freshness check finds nothing to rebuild); rollups by `analytics.backfill`.
Each figure is the median of 5 timed runs after one warm-up, through the real view (Flask test client, signed
in as an admin), without Redis (the queue panel then reads job states).
"""
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = f"neurapix_bench_dashboard_{uuid.uuid4().hex[:6]}"
RUNS = 5

# The scan baseline: what the dashboard's job figures cost read straight from `jobs` (per day × function ×
# provider × status with exact percentiles) — what a dashboard without rollups would run.
SCAN = """
SELECT (created_at AT TIME ZONE 'UTC')::date AS day, function_key, coalesce(provider_key, ''), status, count(*),
       sum(credits_charged), sum(CASE WHEN refunded THEN credits_charged ELSE 0 END),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
FROM jobs WHERE created_at >= now() - CAST(:interval AS interval) GROUP BY 1, 2, 3, 4
"""


def _admin_sql(statement):
    conn = psycopg2.connect(PG_ADMIN_URL)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def _seed(db, sa, jobs):
    users, payments = max(jobs // 10, 10), max(jobs // 20, 10)
    for table in ("payment_daily", "job_daily", "job_error_daily", "rollup_marks", "credit_ledger", "payments",
                  "jobs", "users"):
        db.session.execute(sa.text(f"TRUNCATE {table} RESTART IDENTITY CASCADE"))
    db.session.execute(sa.text(
        "INSERT INTO users (email, password_hash, role, balance, is_banned, credit_shortfall, session_version, "
        "email_job_failed, created_at) SELECT 'user' || i || '@bench.example', 'x', 'customer', 0, false, 0, 0, "
        "true, now() - (i % 365 || ' days')::interval FROM generate_series(1, :n) i"), {"n": users})
    # Statuses: 85% done, 10% failed (refunded), 5% cancelled; latencies 0.3–40 s; spread over 365 days.
    db.session.execute(sa.text(
        "INSERT INTO jobs (user_id, function_key, provider_key, status, credits_charged, refunded, attempts, claims, "
        "cancel_requested, step, step_attempts, rescues, input_meta, error, created_at, started_at, finished_at, "
        "updated_at) "
        "SELECT 1 + i % :users, (ARRAY['enhance','upscale','hdr','denoise'])[1 + i % 4], "
        "(ARRAY['replicate','runpod','local'])[1 + i % 3], "
        "CASE WHEN i % 20 = 0 THEN 'cancelled' WHEN i % 10 = 1 THEN 'failed' ELSE 'done' END, 1 + i % 3, "
        "(i % 20 = 0 OR i % 10 = 1), 1, 1, false, 0, 0, 0, '{}'::jsonb, "
        "CASE WHEN i % 10 = 1 THEN 'Provider answered ' || (500 + i % 4) END, t, t, "
        "t + ((300 + (i::bigint * 7919) % 40000) || ' milliseconds')::interval, t "
        "FROM (SELECT i, now() - interval '1 hour' - ((i::bigint * 31536000 / :n) || ' seconds')::interval AS t "
        "      FROM generate_series(1, :n) i) s"), {"n": jobs, "users": users})
    db.session.execute(sa.text(
        "INSERT INTO payments (user_id, provider, status, amount, currency, credits, refunded_credits, plan_name, "
        "created_at, updated_at) SELECT 1 + i % :users, (ARRAY['stripe','paypal'])[1 + i % 2], "
        "CASE WHEN i % 25 = 0 THEN 'refunded' ELSE 'succeeded' END, 900 + i % 5 * 100, 'USD', 100, 0, "
        "(ARRAY['Starter','Pro'])[1 + i % 2], t, t "
        "FROM (SELECT i, now() - interval '1 hour' - ((i::bigint * 31536000 / :n) || ' seconds')::interval AS t "
        "      FROM generate_series(1, :n) i) s"), {"n": payments, "users": users})
    db.session.commit()
    db.session.execute(sa.text("ANALYZE"))
    db.session.commit()


def _median(fn):
    fn()  # warm-up
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(sizes):
    _admin_sql(f'CREATE DATABASE "{DB_NAME}"')
    os.environ["TEST_DATABASE_URL"] = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + DB_NAME
    os.environ.pop("REDIS_URL", None)
    try:
        import sqlalchemy as sa
        from flask_migrate import upgrade

        from app import create_app
        from app.extensions import db
        from app.services import analytics
        from tests.helpers import login, make_user

        app = create_app("testing")
        app.config["REDIS_URL"] = None
        results = []
        with app.app_context():
            upgrade()
        for jobs in sizes:
            # Each size in its own app context, and each request in its own: nothing (Flask-Login's user in
            # `g`, the session's identity map) outlives the rows of the previous size.
            with app.app_context():
                started = time.perf_counter()
                _seed(db, sa, jobs)
                seeded = time.perf_counter() - started
                started = time.perf_counter()
                analytics.backfill()
                backfilled = time.perf_counter() - started
                admin = make_user("admin")
            client = app.test_client()
            login(client, admin)

            def page(query):
                resp = client.get(f"/admin/?range={query}")  # noqa: B023 (run at once)
                assert resp.status_code == 200, resp.status_code

            def scan(interval):
                with app.app_context():
                    db.session.execute(sa.text(SCAN), {"interval": interval}).all()

            row = {"jobs": jobs, "seed_s": seeded, "backfill_s": backfilled,
                   "dash_30d": _median(lambda: page("30d")), "dash_12m": _median(lambda: page("12m")),
                   "scan_30d": _median(lambda: scan("30 days")), "scan_12m": _median(lambda: scan("365 days"))}
            results.append(row)
            print(f"{jobs:>9,} jobs: seeded {seeded:.1f} s, backfill {backfilled:.1f} s | dashboard 30 d "
                  f"{row['dash_30d']:.0f} ms, 12 m {row['dash_12m']:.0f} ms | scan of jobs 30 d "
                  f"{row['scan_30d']:.0f} ms, 12 m {row['scan_12m']:.0f} ms", flush=True)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        first, last = results[0], results[-1]
        for key in ("dash_30d", "dash_12m", "scan_30d", "scan_12m"):
            print(f"{key}: {last[key] / first[key]:.2f}× from {first['jobs']:,} to {last['jobs']:,} jobs")
        ratio = max(last["dash_30d"] / first["dash_30d"], last["dash_12m"] / first["dash_12m"])
        print(f"goal (dashboard at {last['jobs']:,} ≤ 1.5× at {first['jobs']:,}): "
              f"{'met' if ratio <= 1.5 else 'NOT met'} ({ratio:.2f}×)")
    finally:
        _admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


if __name__ == "__main__":
    main([int(n) for n in sys.argv[1:]] or [10_000, 1_000_000])
