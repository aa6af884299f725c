"""REST API v1 at /api/v1 for client apps: JSON, X-API-Key, no session cookie, no CSRF token.

Every request is authenticated by its key, counted against the key's rate limit (Flask-Limiter's storage:
Redis when configured) and answered with X-RateLimit-* headers; errors are JSON bodies (seed 001).
"""
import time

from flask import Blueprint, g, jsonify, request
from flask_login import AnonymousUserMixin
from limits import RateLimitItemPerMinute
from werkzeug.exceptions import HTTPException

from app.extensions import csrf, limiter
from app.services import apps

bp = Blueprint("api", __name__, url_prefix="/api/v1")
PUBLIC = frozenset({"api.openapi", "api.reference"})
SCOPE = "api-key"


def error(status, message, **fields):
    body = {"error": message, **{k: v for k, v in fields.items() if v is not None}}
    return jsonify(body), status


def _ignore_session():
    """First of all before-request hooks: an API request is never the signed-in browser user, whatever
    cookies it carries, so no session gate, CSRF or staff right applies to it."""
    if request.path.startswith(bp.url_prefix + "/"):
        g._login_user = AnonymousUserMixin()


@bp.before_request
def authenticate():
    if request.endpoint in PUBLIC:
        return None
    found = apps.authenticate(request.headers.get("X-API-Key", ""))
    if found is None:
        return error(401, "Invalid API key")
    g.api_app, g.api_key = found
    item = RateLimitItemPerMinute(g.api_app.rate_limit_per_minute)
    allowed = limiter.limiter.hit(item, SCOPE, str(g.api_key.id))
    reset, remaining = limiter.limiter.get_window_stats(item, SCOPE, str(g.api_key.id))
    g.rate = (item.amount, remaining, int(reset))
    if not allowed:
        retry_after = max(1, int(reset - time.time()) + 1)
        resp, status = error(429, "Rate limit exceeded", retry_after=retry_after)
        resp.headers["Retry-After"] = str(retry_after)
        return resp, status
    return None


@bp.after_request
def rate_headers(resp):
    if "rate" in g:
        limit, remaining, reset = g.rate
        resp.headers.update({"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining),
                             "X-RateLimit-Reset": str(reset)})
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.errorhandler(HTTPException)
def http_error(exc):
    messages = {404: "Not found", 405: "Method not allowed", 413: "Request too large"}
    return error(exc.code, messages.get(exc.code, exc.name))


def init_app(app):
    from app.api import routes  # noqa: F401  (attaches the views to bp)

    csrf.exempt(bp)
    app.register_blueprint(bp)
    app.before_request_funcs.setdefault(None, []).insert(0, _ignore_session)
