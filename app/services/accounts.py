"""Accounts: creating users and checking logins, shared by the site, the CLI and the admin."""
import sqlalchemy as sa

from app.extensions import db
from app.models import Job, User
from app.models.types import utcnow
from app.services import audit, jobs


class AccountError(ValueError):
    """A message safe to show the person who asked."""


def find_by_email(email):
    return db.session.scalars(sa.select(User).where(sa.func.lower(User.email) == (email or "").strip().lower())).first()


def create_user(email, password, role="customer"):
    if find_by_email(email):
        raise AccountError("An account with this email already exists.")
    user = User(email=email, role=role)
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    return user


def authenticate(email, password):
    """The user for these credentials, or AccountError saying why not."""
    user = find_by_email(email)
    if user is None or not user.check_password(password):
        raise AccountError("Wrong email or password.")
    if user.is_banned:
        raise AccountError("This account is suspended. Contact support if you think this is a mistake.")
    user.last_login_at = utcnow()
    return user


def ban(user, reason, actor):
    """Suspend an account: its sessions end at their next request, it cannot log in or submit, and its
    unfinished jobs are cancelled and refunded."""
    reason = (reason or "").strip()
    if not reason:
        raise AccountError("Give a reason for the ban; it is kept with the account.")
    user.is_banned, user.ban_reason = True, reason
    audit.record("ban", "User", user.id, new={"is_banned": True, "ban_reason": reason}, actor=actor)
    db.session.commit()
    active = db.session.scalars(sa.select(Job.id).where(Job.user_id == user.id, Job.status.in_(jobs.ACTIVE))).all()
    for job_id in active:
        jobs.cancel(job_id, actor=actor)
    return len(active)


def unban(user, actor):
    audit.record("unban", "User", user.id, old={"is_banned": True, "ban_reason": user.ban_reason}, actor=actor)
    user.is_banned, user.ban_reason = False, None
    db.session.commit()
