"""Benchmark: remote jobs in flight with ONE worker process (worker.py dispatch) against a Replicate-shaped
server that answers after L seconds, finished by webhook and by poll, next to a plain thread-pool client.

Run on demand (not part of `make test`): .venv/bin/python bench/inflight.py [--jobs 400] [--latency 3]
[--modes webhook,poll] [--threads 64]. Needs PostgreSQL and Redis on 127.0.0.1; makes and drops its own database.
Reports jobs/s, jobs in flight at peak (open predictions at the server), p50/p95 added latency (provider submit
→ job done, minus L) and the worker's peak resident memory; the baseline does create → poll → download with
requests in 64 threads and no database.
"""
import argparse
import base64
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg2
import requests
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = f"neurapix_bench_{uuid.uuid4().hex[:8]}"
POLL_INTERVAL = 1.0


def _configure():
    os.environ.update({
        "NEURAPIX_ENV": "testing",
        "TEST_DATABASE_URL": PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + DB_NAME,
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"),
        "ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "STORAGE_DIR": tempfile.mkdtemp(prefix="neurapix-bench-"),
    })


def _admin_sql(statement):
    conn = psycopg2.connect(PG_ADMIN_URL)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def _image():
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _rss_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid):
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _percentiles(values):
    cuts = statistics.quantiles(values, n=100) if len(values) > 1 else values * 99
    return cuts[49], cuts[94]


def run_ours(app, mode, n, latency):
    """N jobs through services.jobs.submit, then one worker.py process; figures from the server and the DB."""
    import sqlalchemy as sa

    from app.extensions import db
    from app.models import AIFunction, Job, Provider, User
    from app.services import credits, jobs, queue, settings
    from app.services.crypto import encrypt_json
    from tests.contract_servers import ReplicateServer

    server = ReplicateServer(latency=latency).start()
    web = None
    with app.app_context():
        queue.redis_connection(app).flushdb()
        if mode == "webhook":
            from werkzeug.serving import make_server

            web = make_server("127.0.0.1", 0, app, threaded=True)
            threading.Thread(target=web.serve_forever, daemon=True).start()
            settings.update({"site.public_url": f"http://127.0.0.1:{web.server_port}"})
        else:
            settings.update({"site.public_url": ""})
        provider = Provider(key="replicate", name=f"Replicate {mode}", enabled=True,
                            config={"endpoint": f"{server.url}/v1", "model": "acme/restore", "timeout": 120,
                                    "retries": 0, "poll_interval": POLL_INTERVAL, "allow_hosts": ["127.0.0.1"]},
                            secrets=encrypt_json({"api_token": server.expected_token}))
        db.session.add(provider)
        db.session.flush()
        key = f"restore-{mode}"
        db.session.add(AIFunction(key=key, name="Restore", enabled=True, provider_id=provider.id, price_per_use=1,
                                  allowed_formats=["PNG"]))
        user = User(email=f"bench-{mode}@example.com", role="customer")
        user.set_password("bench-password")
        db.session.add(user)
        db.session.flush()
        credits.grant(user.id, n, kind="grant", reason="bench")
        db.session.commit()
        image = _image()
        ids = [jobs.submit(user, key, image).id for _ in range(n)]
        db.session.remove()

    worker = subprocess.Popen([sys.executable, str(ROOT / "worker.py"), "dispatch"], cwd=ROOT, env=os.environ,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    peak_rss = {"worker": 0, "scheduler": 0}
    try:
        with app.app_context():
            while True:
                peak_rss["worker"] = max(peak_rss["worker"], _rss_kib(worker.pid))
                for child in _children(worker.pid):
                    peak_rss["scheduler"] = max(peak_rss["scheduler"], _rss_kib(child))
                finished = db.session.scalar(sa.select(sa.func.count()).select_from(Job).where(
                    Job.id.in_(ids), Job.status.in_(("done", "failed", "cancelled"))))
                db.session.commit()
                if finished == n:
                    break
                time.sleep(0.25)
            rows = db.session.execute(sa.select(Job.status, Job.started_at, Job.finished_at, Job.provider_job_id)
                                      .where(Job.id.in_(ids))).all()
            balance = db.session.scalar(sa.select(User.balance).where(User.email == f"bench-{mode}@example.com"))
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(worker.pid, 9)
        except ProcessLookupError:
            pass
        server.stop()
        if web is not None:
            web.shutdown()
    done = [r for r in rows if r.status == "done"]
    span = (max(r.finished_at for r in rows) - min(r.started_at for r in rows)).total_seconds()
    added = [(r.finished_at.timestamp() - server.jobs[r.provider_job_id]["created"]) - latency for r in done]
    p50, p95 = _percentiles(added)
    return {"label": f"one worker process, {mode}", "done": len(done), "n": n, "rate": n / span,
            "peak": server.peak_open, "p50": p50, "p95": p95, "rss": peak_rss, "balance": balance,
            "webhooks": len(server.webhooks), "polls": sum(1 for path in server.paths("GET")
                                                           if path.startswith("/v1/predictions/"))}


def run_baseline(n, latency, threads):
    """The same N predictions through a plain thread pool: create → poll → download, no database."""
    from tests.contract_servers import ReplicateServer

    server = ReplicateServer(latency=latency).start()
    headers = {"Authorization": f"Bearer {server.expected_token}"}
    image = "data:image/png;base64," + base64.b64encode(_image()).decode()
    local = threading.local()

    def one(_):
        if not hasattr(local, "session"):
            local.session = requests.Session()
        session = local.session
        prediction = session.post(f"{server.url}/v1/models/acme/restore/predictions", headers=headers,
                                  json={"input": {"image": image}}, timeout=30).json()
        created = server.jobs[prediction["id"]]["created"]
        while prediction["status"] not in ("succeeded", "failed", "canceled"):
            time.sleep(POLL_INTERVAL)
            prediction = session.get(prediction["urls"]["get"], headers=headers, timeout=30).json()
        session.get(prediction["output"], timeout=30).content
        return time.time() - created - latency

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        added = list(pool.map(one, range(n)))
    span = time.perf_counter() - started
    server.stop()
    p50, p95 = _percentiles(added)
    return {"label": f"thread pool ({threads} threads), poll", "done": n, "n": n, "rate": n / span,
            "peak": server.peak_open, "p50": p50, "p95": p95, "rss": None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--latency", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--modes", default="webhook,poll")
    args = parser.parse_args()
    _configure()
    _admin_sql(f'CREATE DATABASE "{DB_NAME}"')
    try:
        from flask_migrate import upgrade

        from app import create_app

        app = create_app("testing")
        with app.app_context():
            upgrade()
        results = [run_baseline(args.jobs, args.latency, args.threads)]
        for mode in args.modes.split(","):
            results.append(run_ours(app, mode, args.jobs, args.latency))
    finally:
        _admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        shutil.rmtree(os.environ["STORAGE_DIR"], ignore_errors=True)

    baseline = results[0]["rate"]
    print(f"{args.jobs} jobs, provider latency {args.latency:g} s, poll interval {POLL_INTERVAL:g} s")
    for r in results:
        rss = (f", worker RSS {r['rss']['worker'] / 1024:.0f} MB (+ scheduler {r['rss']['scheduler'] / 1024:.0f} MB)"
               if r["rss"] else "")
        extra = f", {r['webhooks']} webhooks, {r['polls']} status GETs, balance left {r['balance']}" \
            if "polls" in r else ""
        print(f"{r['label']:38s} {r['done']}/{r['n']} done, {r['rate']:6.1f} jobs/s "
              f"({r['rate'] / baseline:.2f}× baseline), peak in flight {r['peak']}, added latency "
              f"p50 {r['p50']:.2f} s p95 {r['p95']:.2f} s{rss}{extra}")
    print("goals: ≥ 200 in flight; ≥ 0.5× baseline; p95 ≤ 1 s (webhook), ≤ poll interval + 1 s (poll); RSS ≤ 250 MB")


if __name__ == "__main__":
    main()
