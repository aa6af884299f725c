"""Benchmark: client apps posting a 64×64 PNG (base64) to POST /api/v1/generate (a local no-op function) under
gunicorn (gunicorn.conf.py, 2 workers) from 16 client threads, against GET /api/v1/functions on the same server
in the same run (same key, same auth and rate-limit path, no job). Prints requests/s, p50/p95 and the ratio,
and the CPU each request cost in the gunicorn workers, in this run's PostgreSQL backends and in the client
threads (from /proc): on a small machine all of them share the same cores, so that sum is what bounds the rate.
No RQ worker runs: the queued jobs wait in Redis and are dropped at the end.

Run on demand (not part of `make test`): .venv/bin/python bench/api.py [--seconds 10] [--clients 16]
Needs PostgreSQL and Redis on 127.0.0.1; makes and drops its own database.
"""
import argparse
import base64
import glob
import io
import os
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

import psycopg2
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.submit_http import DB_NAME, PG_ADMIN_URL, _admin_sql, _configure, _gunicorn  # noqa: E402
TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid):
    """CPU seconds (user + system) a process has used so far; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def _server_pids(master):
    """The gunicorn workers (children of `master`) and the PostgreSQL backends of the bench database."""
    workers = []
    for path in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(path) as stat:
                if int(stat.read().rpartition(")")[2].split()[1]) == master:
                    workers.append(int(path.split("/")[2]))
        except (OSError, ValueError):
            continue
    conn = psycopg2.connect(PG_ADMIN_URL)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (DB_NAME,))
            backends = [row[0] for row in cur.fetchall()]
    finally:
        conn.close()
    return {"web": workers, "db": backends}


def _cpu_snapshot(master):
    pids = _server_pids(master)
    return {"client": time.process_time(), **{part: {pid: _cpu(pid) for pid in found} for part, found in pids.items()}}


def _cpu_used(before, after):
    """CPU seconds per part between two snapshots (a backend opened meanwhile counts from zero)."""
    used = {"client": after["client"] - before["client"]}
    for part in ("web", "db"):
        used[part] = sum(cpu - before[part].get(pid, 0.0) for pid, cpu in after[part].items())
    return used


def _load(clients, seconds, make_request, expect, master):
    """Each client sends in a loop for `seconds`; returns (requests/s, latencies in ms, CPU ms per request by
    part)."""
    latencies = [[] for _ in range(clients)]
    start, stop = threading.Barrier(clients + 1), threading.Event()

    def run(n):
        send = make_request(n)
        start.wait()
        while not stop.is_set():
            began = time.perf_counter()
            resp = send()
            latencies[n].append((time.perf_counter() - began) * 1000)
            assert resp.status_code == expect, (resp.status_code, resp.text[:300])

    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    cpu_before = _cpu_snapshot(master)
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    cpu = _cpu_used(cpu_before, _cpu_snapshot(master))
    flat = [ms for per_client in latencies for ms in per_client]
    return len(flat) / elapsed, flat, {part: seconds * 1000 / len(flat) for part, seconds in cpu.items()}


def _percentiles(latencies):
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49], cuts[94]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    _configure()
    _admin_sql(f'CREATE DATABASE "{DB_NAME}"')
    proc = None
    try:
        from flask_migrate import upgrade
        from PIL import Image

        from app import create_app
        from app.extensions import db
        from app.models import AIFunction, ClientApp, Provider
        from app.services import apps, credits, queue

        app = create_app("testing")
        with app.app_context():
            upgrade()
            provider = Provider(key="local", name="Local", config={"operation": "noop"})
            db.session.add(provider)
            db.session.flush()
            db.session.add(AIFunction(key="noop", name="No-op", enabled=True, provider_id=provider.id,
                                      price_per_use=1, allowed_formats=["PNG"]))
            client_app = ClientApp(name="Bench", rate_limit_per_minute=10_000_000, max_jobs_in_flight=10_000_000)
            db.session.add(client_app)
            db.session.commit()
            _key, raw = apps.create_key(client_app.id, "bench")
            for n in range(args.clients):
                credits.grant(apps.app_user(client_app, f"bench-{n}").id, 1_000_000, kind="grant", reason="bench")
            db.session.commit()
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (10, 20, 30)).save(buffer, format="PNG")
        image = base64.b64encode(buffer.getvalue()).decode()

        proc, url = _gunicorn("wsgi:app")

        def generate(n):
            session = requests.Session()
            headers = {"X-API-Key": raw, "X-User-ID": f"bench-{n}"}
            return lambda: session.post(f"{url}/api/v1/generate", json={"function": "noop", "image_base64": image},
                                        headers=headers)

        def functions(n):
            session = requests.Session()
            return lambda: session.get(f"{url}/api/v1/functions", headers={"X-API-Key": raw})

        runs = {"functions": [], "generate": []}
        for _ in range(args.rounds):  # alternated, so machine noise hits both alike
            runs["functions"].append(_load(args.clients, args.seconds, functions, 200, proc.pid))
            runs["generate"].append(_load(args.clients, args.seconds, generate, 202, proc.pid))
        best = {name: max(results, key=lambda r: r[0]) for name, results in runs.items()}
        print(f"{args.clients} clients, gunicorn 2 workers (gthread), {args.seconds:g} s × {args.rounds} rounds (best)")
        for name, label in (("functions", "GET /api/v1/functions"), ("generate", "POST /api/v1/generate")):
            rate, latencies, cpu = best[name]
            p50, p95 = _percentiles(latencies)
            print(f"{label:24} {rate:7.1f} req/s  p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  "
                  f"{[round(r[0], 1) for r in runs[name]]}")
            print(f"{'':24} CPU per request: web {cpu['web']:.1f} ms, db {cpu['db']:.1f} ms, "
                  f"client {cpu['client']:.1f} ms, sum {sum(cpu.values()):.1f} ms "
                  f"(2 cores: at most {2000 / sum(cpu.values()):.0f} req/s)")
        ratio = best["generate"][0] / best["functions"][0]
        print(f"ratio generate/functions: {ratio:.2f} (goal ≥ 0.50); generate p95 goal ≤ 50 ms")
        with app.app_context():
            for waiting in queue.queues(app):  # the queued bench jobs: no worker will run them
                waiting.empty()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=20)
        _admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        shutil.rmtree(os.environ["STORAGE_DIR"], ignore_errors=True)


if __name__ == "__main__":
    main()
