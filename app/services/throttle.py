"""Failed logins per account: counting, the lockout they cause, and an admin lifting it.

Counters live in the Flask-Limiter storage (Redis when configured) and are keyed by the email as typed,
normalised, whether or not an account has it: an unknown address locks exactly like a real one, so the
answer never tells them apart. The per-IP limit is a Flask-Limiter decorator on the routes themselves.
"""
from flask import current_app
from limits import parse

from app.extensions import limiter

SCOPE = "login-account"


def _item():
    return parse(current_app.config["LOGIN_ACCOUNT_LIMIT"])


def _key(email):
    return (email or "").strip().lower()


def is_locked(email):
    return not limiter.limiter.test(_item(), SCOPE, _key(email))


def record_failure(email):
    """Count one failed attempt; True when this attempt is the one that locks the account."""
    was_locked = is_locked(email)
    limiter.limiter.hit(_item(), SCOPE, _key(email))
    return not was_locked and is_locked(email)


def clear(email):
    """Forget the failures: after a successful login, or when an admin lifts a lockout."""
    limiter.limiter.clear(_item(), SCOPE, _key(email))
