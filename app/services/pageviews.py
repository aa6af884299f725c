"""Page views of the public site: a counter per UTC day and path, nothing about the visitor (no IP, no
cookie, no user agent kept), bots left out by their user agent.

A request only bumps a counter: in Redis (HINCRBY) when REDIS_URL is set, flushed into page_view_daily by
the scheduler every PAGEVIEW_FLUSH_SECONDS; without Redis (make run) in this process's memory, flushed by a
timer thread. Either way no request waits on a database write.
"""
import re
import threading
import uuid
from collections import Counter
from datetime import date, datetime, timezone

import redis
from flask import current_app
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.models import PageViewDaily

COUNTED_ENDPOINTS = frozenset({"site.index", "site.function", "site.pricing", "site.page"})
# Crawlers, link previewers, scripted clients and headless browsers name themselves in their user agent.
BOTS = re.compile(r"bot\b|bot/|crawl|spider|slurp|bingpreview|facebookexternalhit|embedly|preview|curl|wget|"
                  r"python|httpx|go-http-client|java/|okhttp|libwww|headless|phantomjs|lighthouse|pagespeed|"
                  r"monitor|uptime|scrapy|feedfetcher", re.I)
KEY = "pageviews:"  # + ISO day: a hash of path → views
FLUSHING = "pageviews-flushing:"  # a day's hash, renamed for the one flusher reading it
# Counters nobody flushed for a week (no scheduler running) are dropped rather than kept forever.
KEEP_SECONDS = 8 * 86400
MAX_PATH = 300

_pending = Counter()
_lock = threading.Lock()
_timer = None


def is_bot(user_agent):
    return not user_agent or bool(BOTS.search(user_agent))


def count(path, user_agent, day=None):
    """Count one view of path (unless a bot asked); never touches the database."""
    if is_bot(user_agent):
        return False
    day = (day or datetime.now(timezone.utc).date()).isoformat()
    path = path[:MAX_PATH]
    app = current_app._get_current_object()
    if app.config["REDIS_URL"]:
        from app.services import queue

        pipe = queue.redis_connection(app).pipeline(transaction=False)
        pipe.hincrby(KEY + day, path, 1)
        pipe.expire(KEY + day, KEEP_SECONDS)
        pipe.execute()
        return True
    global _timer
    with _lock:
        _pending[(day, path)] += 1
        if _timer is None:
            _timer = threading.Timer(app.config["PAGEVIEW_FLUSH_SECONDS"], _flush_in_process, (app,))
            _timer.daemon = True
            _timer.start()
    return True


def _flush_in_process(app):
    global _timer
    with _lock:
        batch = dict(_pending)
        _pending.clear()
        _timer = None
    with app.app_context():
        try:
            _add(batch)
            db.session.commit()
        finally:
            db.session.remove()


def _add(batch):
    """Add {(iso day, path): views} to the table, one upsert per row."""
    if not batch:
        return
    insert = (postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert)(PageViewDaily)
    rows = [{"day": date.fromisoformat(day), "path": path, "views": n} for (day, path), n in batch.items()]
    db.session.execute(insert.values(rows).on_conflict_do_update(
        index_elements=["day", "path"], set_={"views": PageViewDaily.views + insert.excluded.views}))


def flush():
    """Move the Redis counters into page_view_daily (commits). Each day's hash is renamed before it is read,
    so views counted meanwhile start a fresh one and two flushers never read the same hash. Returns views moved."""
    from app.services import queue

    conn = queue.redis_connection()
    moved = 0
    for key in list(conn.scan_iter(match=KEY + "*")):
        day = key.decode()[len(KEY):]
        mine = f"{FLUSHING}{day}:{uuid.uuid4().hex}"
        try:
            conn.rename(key, mine)
        except redis.exceptions.ResponseError:
            continue  # another flusher took it first
        batch = {(day, path.decode()): int(n) for path, n in conn.hgetall(mine).items()}
        _add(batch)
        db.session.commit()
        conn.delete(mine)
        moved += sum(batch.values())
    return moved


def record(response, request, user):
    """after_request hook: count a successful GET of a public page by a person (staff previews left out)."""
    if (request.method == "GET" and response.status_code == 200 and request.endpoint in COUNTED_ENDPOINTS
            and not (user.is_authenticated and user.is_staff)):
        count(request.path, request.headers.get("User-Agent", ""))
    return response
