"""Benchmark: customers posting a 64×64 PNG to /f/<key> under gunicorn (gunicorn.conf.py, 2 workers) with 12
client threads, against a floor app in the same run (bench/floor_app.py: the same debit transaction and one
RPUSH on the same PostgreSQL and Redis, same gunicorn settings). Prints submits/s and the ratio.

Run on demand (not part of `make test`): .venv/bin/python bench/submit_http.py [--seconds 10] [--clients 12]
Needs PostgreSQL and Redis on 127.0.0.1; makes and drops its own database.
"""
import argparse
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg2
import requests
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = f"neurapix_bench_{uuid.uuid4().hex[:8]}"


def _configure():
    os.environ.update({
        "NEURAPIX_ENV": "testing",
        "TEST_DATABASE_URL": PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + DB_NAME,
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
        "ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "STORAGE_DIR": tempfile.mkdtemp(prefix="neurapix-bench-"),
        "WEB_CONCURRENCY": "2",
    })


def _admin_sql(statement):
    conn = psycopg2.connect(PG_ADMIN_URL)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _gunicorn(target):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind",
                             f"127.0.0.1:{port}", "--access-logfile", "/dev/null",
                             # No worker recycling mid-run: a fresh worker's import (~2 s of CPU) would land in
                             # whichever round happens to pass max_requests and skew that round alone.
                             "--max-requests", "0", target], cwd=ROOT,
                            env=os.environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/healthz", timeout=5).status_code in (200, 404):
                return proc, url
        except requests.RequestException:
            time.sleep(0.2)
    proc.kill()
    proc.wait()
    raise SystemExit(f"gunicorn {target} did not start")


def _load(clients, seconds, make_post):
    """Each client posts in a loop for `seconds`; returns completed posts per second."""
    counts = [0] * len(clients)
    start, stop = threading.Barrier(len(clients) + 1), threading.Event()

    def run(n, client):
        post = make_post(client)
        start.wait()
        while not stop.is_set():
            resp = post()
            assert resp.status_code == 302, (resp.status_code, resp.text[:300])
            counts[n] += 1

    threads = [threading.Thread(target=run, args=(n, c)) for n, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - began)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    _configure()
    _admin_sql(f'CREATE DATABASE "{DB_NAME}"')
    procs = []
    try:
        from flask_migrate import upgrade
        from PIL import Image

        from app import create_app
        from app.extensions import db
        from app.models import AIFunction, Provider, User
        from app.services import credits

        app = create_app("testing")
        with app.app_context():
            upgrade()
            provider = Provider(key="local", name="Local", config={"operation": "noop"})
            db.session.add(provider)
            db.session.flush()
            db.session.add(AIFunction(key="noop", name="No-op", enabled=True, provider_id=provider.id,
                                      price_per_use=1, allowed_formats=["PNG"]))
            users = []
            for n in range(args.clients):
                user = User(email=f"bench{n}@example.com", role="customer")
                user.set_password("bench-password")
                db.session.add(user)
                db.session.flush()
                credits.grant(user.id, 1_000_000, kind="grant", reason="bench")
                users.append(user.id)
            db.session.commit()
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (10, 20, 30)).save(buffer, format="PNG")
        image = buffer.getvalue()

        ours_proc, ours = _gunicorn("wsgi:app")
        procs.append(ours_proc)  # stopped in `finally` even if the floor app fails to start
        floor_proc, floor = _gunicorn("bench.floor_app:app")
        procs.append(floor_proc)

        def signed_in(user_id):
            client = app.test_client()
            with client.session_transaction() as sess:
                sess["_user_id"], sess["_fresh"] = str(user_id), True
            session = requests.Session()
            session.cookies.set("session", client.get_cookie("session").value, domain="127.0.0.1", path="/")
            page = session.get(f"{ours}/f/noop").text
            token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or \
                re.search(r'id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)"', page)
            return session, token.group(1), user_id

        clients = [signed_in(user_id) for user_id in users]

        def ours_post(client):
            session, token, _user_id = client
            return lambda: session.post(f"{ours}/f/noop", data={"csrf_token": token},
                                        files={"image": ("me.png", image, "image/png")}, allow_redirects=False)

        def floor_post(client):
            session, _token, user_id = requests.Session(), None, client[2]
            return lambda: session.post(f"{floor}/submit", data={"user_id": user_id},
                                        files={"image": ("me.png", image, "image/png")}, allow_redirects=False)

        rates = {"ours": [], "floor": []}
        for _ in range(args.rounds):  # alternated, so machine noise hits both alike
            rates["floor"].append(_load(clients, args.seconds, floor_post))
            rates["ours"].append(_load(clients, args.seconds, ours_post))
        ours_rate, floor_rate = max(rates["ours"]), max(rates["floor"])
        print(f"{args.clients} clients, gunicorn 2 workers (gthread), {args.seconds:g} s × {args.rounds} rounds (best)")
        print(f"floor app (debit + ledger row + RPUSH): {floor_rate:7.1f} submits/s  {rates['floor']}")
        print(f"POST /f/<key> (services.jobs.submit):   {ours_rate:7.1f} submits/s  {rates['ours']}")
        print(f"ratio: {ours_rate / floor_rate:.2f} (goal ≥ 0.60)")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=20)
        _admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        shutil.rmtree(os.environ["STORAGE_DIR"], ignore_errors=True)


if __name__ == "__main__":
    main()
