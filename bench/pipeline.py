"""Benchmark: end-to-end jobs/s through submit → RQ → services.jobs.run (Local provider, no-op operation)
against raw RQ no-op jobs on the same worker class, in the same run. Prints the ratio and submit latency.

Run on demand (not part of `make test`): .venv/bin/python bench/pipeline.py [--jobs 200] [--rounds 5]
Needs PostgreSQL and Redis on 127.0.0.1 (as `make test` does); makes and drops its own database.
"""
import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg2
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = f"neurapix_bench_{uuid.uuid4().hex[:8]}"


def _configure():
    os.environ.update({
        "NEURAPIX_ENV": "testing",
        "TEST_DATABASE_URL": PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + DB_NAME,
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10"),
        "ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "STORAGE_DIR": tempfile.mkdtemp(prefix="neurapix-bench-"),
    })


def noop():
    """The baseline job: RQ's own cost per job and nothing else."""


def _admin_sql(statement):
    conn = psycopg2.connect(PG_ADMIN_URL)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def _drain(app, queues):
    from rq import SimpleWorker

    from app.services import queue

    worker = SimpleWorker(queues, connection=queue.redis_connection(app))
    started = time.perf_counter()
    worker.work(burst=True, logging_level="WARNING")
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    _configure()
    _admin_sql(f'CREATE DATABASE "{DB_NAME}"')
    try:
        from flask_migrate import upgrade
        from PIL import Image
        from rq import Queue

        from app import create_app
        from app.extensions import db
        from app.models import AIFunction, Job, Provider, User
        from app.services import credits, jobs, queue

        app = create_app("testing")
        with app.app_context():
            upgrade()
            conn = queue.redis_connection(app)
            conn.flushdb()
            provider = Provider(key="local", name="Local", config={"operation": "noop", "timeout": 30, "retries": 0})
            db.session.add(provider)
            db.session.flush()
            db.session.add(AIFunction(key="noop", name="No-op", enabled=True, provider_id=provider.id,
                                      price_per_use=1, allowed_formats=["PNG"]))
            user = User(email="bench@example.com", role="customer")
            user.set_password("bench-password")
            db.session.add(user)
            db.session.flush()
            credits.grant(user.id, args.jobs * args.rounds, kind="grant", reason="bench")
            db.session.commit()
            user_id = user.id
            buffer = io.BytesIO()
            Image.new("RGB", (64, 64), (10, 20, 30)).save(buffer, format="PNG")
            image = buffer.getvalue()

            # Rounds alternate baseline and ours so machine noise hits both alike; medians are reported.
            raw_rates, our_rates, latencies = [], [], []
            raw = Queue("bench-raw", connection=conn)
            for _ in range(args.rounds):
                for _ in range(args.jobs):
                    raw.enqueue("bench.pipeline.noop", result_ttl=0)
                raw_rates.append(args.jobs / _drain(app, [raw]))

                customer = db.session.get(User, user_id)  # the previous round's session is gone
                for _ in range(args.jobs):
                    started = time.perf_counter()
                    jobs.submit(customer, "noop", image)
                    latencies.append(time.perf_counter() - started)
                db.session.remove()
                our_rates.append(args.jobs / _drain(app, queue.queues(app)))
            done = db.session.query(Job).filter(Job.status == "done").count()
            assert done == args.jobs * args.rounds, f"only {done} of {args.jobs * args.rounds} jobs finished"

        raw_rate, our_rate = statistics.median(raw_rates), statistics.median(our_rates)
        cuts = statistics.quantiles(latencies, n=100)
        print(f"jobs: {args.jobs} per round, {args.rounds} rounds (medians)")
        print(f"raw RQ no-op (SimpleWorker):     {raw_rate:8.1f} jobs/s")
        print(f"submit → RQ → services.jobs.run: {our_rate:8.1f} jobs/s")
        print(f"ratio: {our_rate / raw_rate:.2f} (goal ≥ 0.70)")
        print(f"submit latency: p50 {cuts[49] * 1000:.1f} ms, p95 {cuts[94] * 1000:.1f} ms")
    finally:
        _admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        shutil.rmtree(os.environ["STORAGE_DIR"], ignore_errors=True)


if __name__ == "__main__":
    main()
