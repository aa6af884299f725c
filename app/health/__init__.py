"""Health endpoints for load balancers and uptime checks: /healthz (the process answers) and /readyz
(database, Redis, schema and workers, each reported apart so an operator sees which part is down)."""
import time

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, current_app, jsonify
from rq import Worker

from app import security
from app.extensions import db
from app.services import queue

bp = Blueprint("health", __name__)

# A worker whose last heartbeat is older than this is not counted as alive (RQ beats every few seconds
# while idle and at least once per job timeout while busy).
WORKER_FRESH_SECONDS = 120


@bp.get("/healthz")
def healthz():
    """Alive: answers without touching the database or Redis, so a slow dependency never restarts web."""
    return jsonify(status="ok")


def _database():
    with db.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
        current = set(MigrationContext.configure(conn).get_current_heads())
    migrate = current_app.extensions["migrate"]
    script = ScriptDirectory.from_config(migrate.migrate.get_config(migrate.directory))
    heads = set(script.get_heads())
    return {"ok": True}, {"ok": current == heads, "current": sorted(current), "head": sorted(heads)}


def _redis_and_workers():
    if not current_app.config["REDIS_URL"]:
        # Without Redis the web process runs jobs in its own thread pool: nothing else to wait for.
        return {"ok": True, "mode": "in-process"}, {"ok": True, "mode": "in-process", "alive": 0}
    conn = queue.redis_connection()
    conn.ping()
    now = time.time()
    # Worker processes, not RQ workers: one process serves its queues with several (one per thread).
    alive = len({(w.hostname, w.pid) for w in Worker.all(connection=conn)
                 if w.last_heartbeat and now - w.last_heartbeat.timestamp() < WORKER_FRESH_SECONDS})
    return {"ok": True}, {"ok": alive > 0, "alive": alive}


def _check(part):
    try:
        return part()
    except Exception as exc:  # noqa: BLE001  (any failure of a dependency is "not ready", named by its type)
        failed = {"ok": False, "error": type(exc).__name__}
        return failed, failed


@bp.get("/readyz")
def readyz():
    """Ready: the database and Redis answer, migrations are at head and a worker was seen recently."""
    database, migrations = _check(_database)
    redis_part, workers = _check(_redis_and_workers)
    parts = {"database": database, "migrations": migrations, "redis": redis_part, "workers": workers}
    ready = all(part["ok"] for part in parts.values())
    db.session.remove()
    return jsonify(status="ok" if ready else "unavailable", **parts), 200 if ready else 503


def init_app(app):
    app.register_blueprint(bp)
    # Load balancers probe over plain http inside the platform: a redirect to https would hide a 503.
    for view in (healthz, readyz):
        security.view_options(app, view, force_https=False)
