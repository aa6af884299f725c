"""Who may act on whom: the one rule services.accounts, the admin and the site ask before anyone changes a
user or someone else's job.

admin acts on anyone, but never leaves the site without an active admin; support acts only on customers
(never on staff, never on itself); viewer and customer change nothing that is not their own.
"""
import sqlalchemy as sa

from app.extensions import db
from app.models import User
from app.services import settings

# What staff may do to a user account. "edit" is the profile (email, plan); the rest are named actions.
USER_ACTIONS = ("edit", "set_password", "reset_link", "change_role", "credits", "ban", "unban", "revoke_sessions",
                "unlock", "reset_2fa", "delete")
# Support never learns or sets a password: "reset_link" emails the customer a reset link instead.
SUPPORT_ACTIONS = frozenset({"edit", "reset_link", "credits", "ban", "unban", "revoke_sessions", "unlock"})
# A client app's user never signs in and has no email: nothing about logins or passwords applies to them.
SIGN_IN_ACTIONS = frozenset({"set_password", "reset_link", "change_role", "revoke_sessions", "unlock", "reset_2fa"})
# Actions that could leave nobody able to run the admin when their target is the last active admin.
LOCKS_OUT_ADMIN = frozenset({"change_role", "ban", "delete"})


class Refused(Exception):
    """Why the actor may not do this; safe to show them."""


def _other_active_admins(target):
    return db.session.scalar(sa.select(sa.func.count()).select_from(User).where(
        User.role == "admin", User.is_banned.is_(False), User.id != target.id)) or 0


def check_user_action(actor, target, action):
    """Raise Refused unless `actor` may perform `action` on `target` (a User)."""
    if action not in USER_ACTIONS:
        raise ValueError(f"unknown user action {action!r}")
    if target.app_id is not None and action in SIGN_IN_ACTIONS:
        raise Refused("This user belongs to a client app and never signs in here.")
    role = getattr(actor, "role", None)
    if role == "admin":
        if (action in LOCKS_OUT_ADMIN and target.role == "admin" and not target.is_banned
                and not _other_active_admins(target)):
            raise Refused("This is the last active admin: make another admin first.")
        return
    if role == "support":
        if target.id == actor.id:
            raise Refused("Support staff cannot change their own account here; ask an admin.")
        if target.role != "customer":
            raise Refused("Support staff act on customer accounts only.")
        if action not in SUPPORT_ACTIONS:
            raise Refused("Only an admin can do this.")
        return
    raise Refused("Your role is read-only.")


def may_act_on_user(actor, target, action):
    try:
        check_user_action(actor, target, action)
    except Refused:
        return False
    return True


def may_cancel_job(actor, job):
    """The job's owner, an admin, or support for a customer's job; never a viewer on someone else's."""
    if actor is None or not getattr(actor, "is_authenticated", True):
        return False
    return job.user_id == actor.id or may_retry_job(actor, job)


def may_retry_job(actor, job):
    """Staff who operate jobs: an admin any job, support a customer's job; a retry is never the customer's."""
    role = getattr(actor, "role", None)
    if role == "admin":
        return True
    if role == "support":
        owner = db.session.get(User, job.user_id) if job.user_id else None
        return owner is None or owner.role == "customer"
    return False


def job_refusal(user):
    """None, or why this account may not run a job yet: an unconfirmed address, when the owner requires one."""
    if (user.role == "customer" and user.app_id is None and not user.email_verified_at
            and settings.get("customers.require_verified_email")):
        return "Confirm your email address first: open the link we emailed you, or send a new one from your account."
    return None


# Moderating shared content: admin on anyone's, support on customers' (as with accounts); viewers only look.
MODERATOR_ROLES = frozenset({"admin", "support"})


def check_moderation(actor, owner):
    """Raise Refused unless `actor` may blur, delete or restore content `owner` (a User) shared."""
    role = getattr(actor, "role", None)
    if role == "admin":
        return
    if role == "support":
        if owner is not None and owner.role != "customer":
            raise Refused("Support staff moderate customers' content only.")
        return
    raise Refused("Your role is read-only.")
