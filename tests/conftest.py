"""Test fixtures: a throwaway PostgreSQL database per run, migrated with our Alembic revisions.

Tests talk to real PostgreSQL (and Redis where jobs run); nothing is faked in our own code path.
"""
import atexit
import ipaddress
import os
import socket
import uuid

import shutil
import tempfile
import threading

import psycopg2
import redis
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

CHROMIUM = "/usr/bin/chromium"
# As root in a sandbox with no outside network: no sandbox, and no background calls home.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = os.path.join(os.path.dirname(__file__), "artifacts")

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin_connection():
    conn = psycopg2.connect(PG_ADMIN_URL)
    conn.autocommit = True
    return conn


def create_database(name):
    conn = _admin_connection()
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_database(name):
    conn = _admin_connection()
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


# Named at import so every app the suite creates (even at collection), and every worker process it
# starts (they inherit the environment), point at the same database, Redis, key and storage.
TEST_DB_NAME = f"neurapix_test_{uuid.uuid4().hex[:10]}"
os.environ["TEST_DATABASE_URL"] = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + TEST_DB_NAME
REDIS_BASE_URL = os.environ.get("TEST_REDIS_BASE_URL", "redis://127.0.0.1:6379")
REDIS_CLAIM_KEY = "neurapix-test-run"


def _claim_redis_db():
    """Take a Redis db no other test run on this machine holds (a claim key with a TTL marks it)."""
    for number in range(1, 16):
        url = f"{REDIS_BASE_URL}/{number}"
        if redis.Redis.from_url(url).set(REDIS_CLAIM_KEY, TEST_DB_NAME, nx=True, ex=4 * 3600):
            return url
    raise RuntimeError("every Redis db 1-15 is claimed by another test run")


def flush_redis():
    """Empty this run's Redis db, keeping its claim so no other run takes it meanwhile."""
    conn = redis.Redis.from_url(os.environ["REDIS_URL"])
    conn.flushdb()
    conn.set(REDIS_CLAIM_KEY, TEST_DB_NAME, ex=4 * 3600)


def _release_redis_claim():
    """Give the claimed db back when the run ends, whichever tests it ran (not only those with a database)."""
    conn = redis.Redis.from_url(os.environ["REDIS_URL"])
    if conn.get(REDIS_CLAIM_KEY) == TEST_DB_NAME.encode():
        conn.delete(REDIS_CLAIM_KEY)


if os.environ.get("TEST_REDIS_URL"):
    os.environ["REDIS_URL"] = os.environ["TEST_REDIS_URL"]
else:
    os.environ["REDIS_URL"] = _claim_redis_db()
    atexit.register(_release_redis_claim)
os.environ["ENCRYPTION_KEY"] = Fernet.generate_key().decode()
os.environ["STORAGE_DIR"] = tempfile.mkdtemp(prefix="neurapix-storage-")
os.environ["RETRY_BACKOFF_SECONDS"] = "0.01"
os.environ["NEURAPIX_ENV"] = "testing"


@pytest.fixture(scope="session")
def database_url():
    url = create_database(TEST_DB_NAME)
    yield url
    drop_database(TEST_DB_NAME)
    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    shutil.rmtree(os.environ["STORAGE_DIR"], ignore_errors=True)


@pytest.fixture(scope="session")
def app(database_url):
    from flask_migrate import upgrade

    from app import create_app

    app = create_app("testing")
    with app.app_context():
        upgrade()
    flush_redis()
    return app


@pytest.fixture(autouse=True)
def _clean_tables(request):
    """Every test starts from empty tables (truncated after it, so a failure leaves evidence)."""
    yield
    if "app" not in request.fixturenames:
        return
    app = request.getfixturevalue("app")
    from app.extensions import db

    with app.app_context():
        db.session.remove()
        tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
        db.session.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.session.commit()
    flush_redis()


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield
        from app.extensions import db

        db.session.remove()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def live_server(app):
    """The app served over real HTTP on 127.0.0.1, for the browser tests."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def browser_page():
    """A headless Debian chromium page driven by Playwright (no browser download involved)."""
    from playwright import sync_api

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(15000)
        yield page
        browser.close()


def _loopback(host):
    try:
        return ipaddress.ip_address(str(host).strip("[]").split("%", 1)[0]).is_loopback
    except ValueError:
        return host == "localhost"


@pytest.fixture
def loopback_only(monkeypatch):
    """Fails the test on any connection (or DNS lookup) that would leave 127.0.0.0/8 / ::1: tests of the
    outbound guard must prove that a refused URL sends nothing, and nothing may leak to a real network."""
    attempts = []

    def guarded(original):
        def connect(sock, address, *args):
            host = address[0] if isinstance(address, tuple) else address
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(host):
                attempts.append(address)
                pytest.fail(f"the test tried to connect to {address}")
            return original(sock, address, *args)
        return connect

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if not _loopback(host):
            attempts.append(host)
            pytest.fail(f"the test tried to resolve {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded(socket.socket.connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(socket.socket.connect_ex))
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts
    assert attempts == []
