"""Health endpoints: /healthz answers without dependencies; /readyz names the part that is not ready."""
import redis
import sqlalchemy as sa
from rq import Worker

from app.extensions import db
from app.services import settings
from tests.workers import WorkerProcess, wait_for


def test_healthz_answers_without_touching_dependencies(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.get_json() == {"status": "ok"}


def test_readyz_is_unavailable_until_a_worker_is_alive_then_ready(app, client):
    body = client.get("/readyz")
    assert body.status_code == 503
    parts = body.get_json()
    assert parts["database"]["ok"] and parts["redis"]["ok"]
    assert parts["migrations"]["ok"] and parts["migrations"]["current"] == parts["migrations"]["head"]
    assert parts["workers"] == {"ok": False, "alive": 0}

    with WorkerProcess():
        conn = redis.Redis.from_url(app.config["REDIS_URL"])
        wait_for(lambda: Worker.all(connection=conn), what="worker registered")
        resp = client.get("/readyz")
        assert resp.status_code == 200, resp.get_json()
        assert resp.get_json()["status"] == "ok" and resp.get_json()["workers"]["alive"] == 1


def test_readyz_names_redis_when_it_is_down(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")
    app.extensions.pop("neurapix_redis", None)
    try:
        resp = client.get("/readyz")
    finally:
        app.extensions.pop("neurapix_redis", None)
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["database"]["ok"] is True
    assert body["redis"] == {"ok": False, "error": "ConnectionError"}


def test_readyz_reports_a_schema_behind_head(app, client, ctx):
    version = db.session.scalar(sa.text("SELECT version_num FROM alembic_version"))
    db.session.execute(sa.text("UPDATE alembic_version SET version_num = '1192cf689eff'"))
    db.session.commit()
    try:
        body = client.get("/readyz").get_json()
    finally:
        db.session.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": version})
        db.session.commit()
    assert body["migrations"]["ok"] is False
    assert body["migrations"]["current"] == ["1192cf689eff"] and body["migrations"]["head"] == [version]


def test_health_endpoints_stay_open_in_maintenance_mode(app, client, ctx):
    settings.update({"flags.maintenance": True})
    assert client.get("/").status_code == 503
    assert client.get("/healthz").status_code == 200
    # Not the maintenance page: the readiness report itself (503 here only because no worker runs).
    assert set(client.get("/readyz").get_json()) == {"status", "database", "migrations", "redis", "workers"}


def test_health_endpoints_answer_plain_http_where_everything_else_moves_to_https(app, client, monkeypatch):
    monkeypatch.setattr(app.extensions["talisman"], "force_https", True)
    assert client.get("/pricing").status_code == 302
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503  # the report itself (no worker runs), not a redirect
