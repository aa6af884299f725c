"""Signed-in sessions: starting one (rotated, remember-me for customers only), ending it, and the idle and
absolute lifetimes from Settings → Security, checked before every request.

Revocation is the user's session_version (see User.get_id): services.accounts bumps it; load_user refuses
any cookie, session or remember-me, that carries an older one.
"""
import time
from datetime import timedelta

from flask import request, session
from flask_login import current_user, login_user, logout_user

from app.extensions import db
from app.models import User
from app.services import settings

LOGIN_AT = "neurapix_login_at"
SEEN_AT = "neurapix_seen_at"
# Writing the last-seen time changes the cookie; once a minute is precise enough for a 30-minute timeout.
SEEN_RESOLUTION = 60


def load_user(user_id):
    """Flask-Login's loader: "<id>:<session version>"; anything older or malformed signs nobody in."""
    user_part, _, version = (user_id or "").partition(":")
    if not user_part.isdigit() or not version.isdigit():
        return None
    user = db.session.get(User, int(user_part))
    if user is None or user.is_banned or user.session_version != int(version):
        return None
    return user


def begin(user, remember=False):
    """Sign `user` in on a fresh session: nothing from before the login (a planted session) survives."""
    session.clear()
    remember = bool(remember) and not user.is_staff  # staff never get a remember-me cookie
    login_user(user, remember=remember, duration=timedelta(days=settings.get("security.customer_session_days")))
    session[LOGIN_AT] = session[SEEN_AT] = int(time.time())


def end():
    logout_user()
    session.clear()


def expired(user, login_at, seen_at, now):
    """Why this session has ended, or None."""
    if user.is_staff:
        if now - seen_at > settings.get("security.staff_idle_minutes") * 60:
            return "You were signed out after a period of inactivity. Please log in again."
        if now - login_at > settings.get("security.staff_session_hours") * 3600:
            return "Your session has ended. Please log in again."
    elif now - login_at > settings.get("security.customer_session_days") * 86400:
        return "Your session has ended. Please log in again."
    return None


def check():
    """Before each request: end a session past its idle or absolute lifetime. Returns a message or None."""
    if request.endpoint == "static" or not current_user.is_authenticated:
        return None
    now = int(time.time())
    # A session restored from a remember-me cookie starts its clock now.
    login_at = session.setdefault(LOGIN_AT, now)
    seen_at = session.get(SEEN_AT, now)
    reason = expired(current_user, login_at, seen_at, now)
    if reason:
        end()
        return reason
    if now - seen_at >= SEEN_RESOLUTION or SEEN_AT not in session:
        session[SEEN_AT] = now
    return None
