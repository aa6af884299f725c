"""Accounts: creating users, checking logins, and every change staff make to a user, shared by the site,
the CLI and the admin. Each change asks services.permissions first, audits, and commits."""
import hashlib

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app.extensions import db
from app.models import Job, User
from app.models.types import utcnow
from app.services import audit, credits, jobs, passwords, permissions, settings, throttle, two_factor


class AccountError(ValueError):
    """A message safe to show the person who asked."""


class Refused(AccountError):
    """The actor may not do this to that user (services.permissions said no)."""


LOGIN_REFUSED = "Wrong email or password."
LOCKED = "Too many failed attempts for this account. Try again later, or ask support to lift the lockout."


def normalise_email(raw):
    """The one email check for every form and the CLI: a deliverable-looking address, lower-cased.

    Special-use domains (.local, .localhost, .test, .invalid…) are refused everywhere alike, so an address
    that can be saved can also log in.
    """
    try:
        checked = validate_email((raw or "").strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise AccountError(f"Invalid email address: {exc}") from None
    return checked.normalized.lower()


def check_password_policy(password, email=None):
    problem = passwords.policy_error(password, email)
    if problem:
        raise AccountError(problem)


def find_by_email(email):
    return db.session.scalars(sa.select(User).where(sa.func.lower(User.email) == (email or "").strip().lower())).first()


def create_user(email, password, role="customer"):
    """A new account (the caller commits). Email and password policies apply."""
    email = normalise_email(email)
    check_password_policy(password, email)
    user = User(email=email, role=role)
    # Hashed before the lookup: a taken address costs sign-up the same work as a new one.
    user.set_password(password)
    if find_by_email(email):
        raise AccountError("An account with this email already exists.")
    db.session.add(user)
    db.session.flush()
    return user


def sign_up(email, password):
    """Customer sign-up. Returns the new user, or None when the address is taken: the page then answers
    exactly as for a new account ("check your email"), so sign-up never tells who has an account."""
    try:
        user = create_user(email, password)
    except AccountError:
        if find_by_email(email) is None:
            raise
        db.session.rollback()
        return None
    db.session.commit()
    return user


def logout(user):
    """Logging out ends every session and remember-me cookie of the account, not only this browser's."""
    user.session_version = (user.session_version or 0) + 1
    db.session.commit()


def authenticate(email, password):
    """The user for these credentials, or AccountError saying why not.

    Exactly one password hash check happens whatever the email (a dummy hash when no account has it), and
    unknown emails lock like real ones, so neither timing nor answers reveal who has an account.
    """
    user = find_by_email(email)
    locked = throttle.is_locked(email)
    matched = passwords.verify(user.password_hash if user else None, password)
    if locked:
        raise AccountError(LOCKED)
    if not matched:
        # No actor: nobody is signed in; the row names the account the attempt was for.
        attempt = {"email": (email or "")[:254]}
        audit.record("login_failed", "User", user.id if user else None, new=attempt)
        if throttle.record_failure(email):
            audit.record("lockout", "User", user.id if user else None, new=attempt)
        db.session.commit()
        raise AccountError(LOGIN_REFUSED)
    if user.is_banned:
        raise AccountError("This account is suspended. Contact support if you think this is a mistake.")
    return user


RESET_LINK_HOURS = 24


def _reset_serializer():
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="neurapix-password-reset")


def _reset_fingerprint(user):
    # Changes with the password and with every revocation, so a link works once and dies with a sign-out.
    return hashlib.sha256(f"{user.password_hash}:{user.session_version}".encode()).hexdigest()[:20]


def password_reset_token(actor, user):
    """A signed link token that lets the customer choose a new password, for staff to hand over (audited)."""
    _check(actor, user, "reset_link")
    token = _reset_serializer().dumps({"user": user.id, "fp": _reset_fingerprint(user)})
    audit.record("password_reset_link", "User", user.id, actor=actor)
    db.session.commit()
    return token


def user_for_reset(token):
    """The user a reset link is for, or AccountError (expired, used, or forged)."""
    try:
        data = _reset_serializer().loads(token, max_age=RESET_LINK_HOURS * 3600)
    except SignatureExpired:
        raise AccountError("This link has expired. Ask support for a new one.") from None
    except BadSignature:
        raise AccountError("This link is not valid. Ask support for a new one.") from None
    user = db.session.get(User, data.get("user"))
    if user is None or user.is_banned or data.get("fp") != _reset_fingerprint(user):
        raise AccountError("This link has already been used or is no longer valid. Ask support for a new one.")
    return user


def reset_password(token, new_password):
    user = user_for_reset(token)
    check_password_policy(new_password, user.email)
    user.set_password(new_password)
    revoke_sessions(user, None, "password reset")
    db.session.commit()
    return user


def second_factor(user, code):
    """Login's second step: a TOTP or recovery code, throttled and audited like a password. AccountError if not."""
    if throttle.is_locked(user.email):
        raise AccountError(LOCKED)
    try:
        two_factor.verify(user, code)
    except two_factor.CodeError as exc:
        audit.record("login_failed", "User", user.id, new={"email": user.email, "step": "2fa"})
        if throttle.record_failure(user.email):
            audit.record("lockout", "User", user.id, new={"email": user.email})
        db.session.commit()
        raise AccountError(str(exc)) from None


def disable_own_two_factor(user, password):
    if two_factor.required_for(user):
        raise AccountError("Your role requires two-factor authentication; it cannot be turned off.")
    if not passwords.verify(user.password_hash, password):
        raise AccountError("The password is wrong.")
    two_factor.remove(user, user, "2fa_disable")


def record_login(user):
    """The password (and any second factor) passed: reset the failure count, audit, commit."""
    throttle.clear(user.email)
    user.last_login_at = utcnow()
    audit.record("login", "User", user.id, actor=user)
    db.session.commit()


def revoke_sessions(user, actor, cause):
    """End every session and remember-me cookie of `user` (the caller commits): any new version does it."""
    user.session_version = (user.session_version or 0) + 1
    audit.record("revoke_sessions", "User", user.id, new={"cause": cause}, actor=actor)


def _check(actor, user, action):
    try:
        permissions.check_user_action(actor, user, action)
    except permissions.Refused as exc:
        raise Refused(str(exc)) from None


def sign_out_everywhere(user, actor):
    """The person themselves, or staff allowed to act on them."""
    if actor.id != user.id:
        _check(actor, user, "revoke_sessions")
    revoke_sessions(user, actor, "sign out everywhere")
    db.session.commit()


def change_own_password(user, current, new):
    if not passwords.verify(user.password_hash, current):
        raise AccountError("The current password is wrong.")
    check_password_policy(new, user.email)
    user.set_password(new)
    revoke_sessions(user, user, "password change")
    db.session.commit()


def adjust_credits(actor, user, amount, reason):
    """A staff credit correction: within the cap, with a reason; one ledger and one audit row. New balance."""
    _check(actor, user, "credits")
    try:
        amount = int(str(amount).strip())
    except ValueError:
        raise AccountError("Enter a whole number of credits, such as 50 or -20.") from None
    cap = settings.get("security.credit_adjust_max")
    if abs(amount) > cap:
        raise AccountError(f"A single adjustment is limited to {cap} credits either way.")
    before = user.balance
    try:
        balance = credits.adjust(user.id, amount, reason=reason, actor_id=actor.id)
    except ValueError as exc:
        db.session.rollback()
        raise AccountError(str(exc)) from None
    audit.record("credits", "User", user.id, old={"balance": before}, new={"balance": balance}, actor=actor)
    db.session.commit()
    return balance


def ban(user, reason, actor):
    """Suspend an account: its sessions end at once, it cannot log in or submit, and its unfinished jobs are
    cancelled and refunded. Returns how many jobs were cancelled."""
    _check(actor, user, "ban")
    reason = (reason or "").strip()
    if not reason:
        raise AccountError("Give a reason for the ban; it is kept with the account.")
    user.is_banned, user.ban_reason = True, reason
    audit.record("ban", "User", user.id, new={"is_banned": True, "ban_reason": reason}, actor=actor)
    revoke_sessions(user, actor, "ban")
    db.session.commit()
    active = db.session.scalars(sa.select(Job.id).where(Job.user_id == user.id, Job.status.in_(jobs.ACTIVE))).all()
    for job_id in active:
        jobs.cancel(job_id, actor=actor)
    return len(active)


def unban(user, actor):
    _check(actor, user, "unban")
    audit.record("unban", "User", user.id, old={"is_banned": True, "ban_reason": user.ban_reason}, actor=actor)
    user.is_banned, user.ban_reason = False, None
    db.session.commit()


def unlock(user, actor):
    """Lift a login lockout before its window passes."""
    _check(actor, user, "unlock")
    was_locked = throttle.is_locked(user.email)
    throttle.clear(user.email)
    audit.record("unlock", "User", user.id, old={"locked": was_locked}, new={"locked": False}, actor=actor)
    db.session.commit()


def reset_two_factor(user, actor):
    _check(actor, user, "reset_2fa")
    two_factor.remove(user, actor, "2fa_reset")


def staff_edit(actor, user, old_role, is_created, new_password=None):
    """Rules for the admin's user form, inside its transaction: who may edit whom, the password policy,
    the last admin, and sessions ending when the password or role changed. Raises AccountError."""
    if is_created:
        if actor.role != "admin":
            raise Refused("Only an admin can create accounts.")
        if not new_password:
            raise AccountError("A new user needs a password.")
    else:
        # Judge the account as it was before the form changed it (and the actor too, when editing itself).
        was = User(id=user.id, role=old_role, is_banned=user.is_banned)
        judge = was if actor.id == user.id else actor
        _check(judge, was, "edit")
        if new_password:
            _check(judge, was, "set_password")
        if user.role != old_role:
            _check(judge, was, "change_role")
    user.email = normalise_email(user.email)
    if new_password:
        check_password_policy(new_password, user.email)
        user.set_password(new_password)
    if not is_created and (new_password or user.role != old_role):
        revoke_sessions(user, actor, "password change" if new_password else "role change")
