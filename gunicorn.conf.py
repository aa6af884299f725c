"""gunicorn settings for the web process (Procfile: web: gunicorn -c gunicorn.conf.py wsgi:app).

Threaded workers: a slow or idle client holds one thread, not a whole worker, so one stalled socket
cannot hold every other request back the way sync workers did.
"""
import os

from gunicorn.glogging import Logger

from app.log_redaction import redact

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# A request that takes longer than this is a bug or an attack; uploads are capped well below it.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
# Bounded request lines and headers: a scanner's oversized request is refused before Flask sees it.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
# Recycle workers now and then so slow leaks in any library cannot grow without bound.
max_requests = 2000
max_requests_jitter = 200
accesslog = "-"
errorlog = "-"


class RedactingLogger(Logger):
    """The access log without link tokens or email addresses (app/log_redaction.py)."""

    def atoms(self, resp, req, environ, request_time):
        return {key: redact(value) for key, value in super().atoms(resp, req, environ, request_time).items()}


logger_class = RedactingLogger
