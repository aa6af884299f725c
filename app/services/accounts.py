"""Accounts: creating users and checking logins, shared by the site, the CLI and the admin."""
import sqlalchemy as sa

from app.extensions import db
from app.models import User
from app.models.types import utcnow


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
