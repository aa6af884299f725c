"""What request logs must never hold: link tokens (in the path of reset, verification and email-change links)
and email addresses (in query strings such as an admin search). Used by gunicorn's and werkzeug's access logs."""
import logging
import re

TOKEN_PATH = re.compile(r"(/(?:reset-password|verify-email|confirm-email)/)[^/?#\s\"]+")
EMAIL = re.compile(r"[^\s/?&=\"']+(?:@|%40)[^\s/?&=\"']+", re.IGNORECASE)
HIDDEN = "[redacted]"


def redact(text):
    if not isinstance(text, str):
        return text
    return EMAIL.sub(HIDDEN, TOKEN_PATH.sub(r"\1" + HIDDEN, text))


class RedactingFilter(logging.Filter):
    """For werkzeug's development server log, which writes each request line."""

    def filter(self, record):
        record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) for a in record.args)
        return True


def init_app(_app):
    logging.getLogger("werkzeug").addFilter(RedactingFilter())
