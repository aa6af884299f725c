"""Accounts: creating users, checking logins, and every change staff make to a user, shared by the site,
the CLI and the admin. Each change asks services.permissions first, audits, and commits."""
import hashlib
import logging
import secrets

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app.extensions import db
from app.models import CreditLedger, EmailLog, Job, Order, Payment, User
from app.models.types import utcnow
from app.services import (audit, cms, credits, jobs, mail, passwords, permissions, referrals, settings, storage,
                          throttle, two_factor)
from app.services.urls import absolute_url

log = logging.getLogger(__name__)


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
    if role == "customer":
        referrals.code_for(user)
    return user


def sign_up(email, password, referral_code=None):
    """Customer sign-up. Returns the new user, or None when the address is taken: the page then answers
    exactly as for a new account ("check your email"), so sign-up never tells who has an account."""
    try:
        user = create_user(email, password)
    except AccountError:
        if find_by_email(email) is None:
            raise
        db.session.rollback()
        return None
    referrals.attach(user, referral_code)
    mail.queue(user, "verify_email")
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


RESET_LINK_HOURS = 2
# Emails a person can ask for (reset, confirmation) go out at most once per this many seconds per account.
REQUEST_EMAIL_SECONDS = 60


def _reset_serializer():
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="neurapix-password-reset")


def _reset_fingerprint(user):
    # Changes with the password and with every revocation, so a link works once and dies with a sign-out.
    return hashlib.sha256(f"{user.password_hash}:{user.session_version}".encode()).hexdigest()[:20]


@mail.message("password_reset")
def _password_reset_message(user, _params):
    if user is None or user.is_banned:
        return None
    token = _reset_serializer().dumps({"user": user.id, "fp": _reset_fingerprint(user)})
    return {"user": user, "link": absolute_url("auth.reset_password", token=token), "hours": RESET_LINK_HOURS}


def request_password_reset(email):
    """"Forgot password": email a reset link when the address has an account; the same answer either way."""
    user = find_by_email(email)
    # One email a minute per account at most: the form cannot be used to flood someone's inbox.
    if user is None or user.is_banned or mail.recently_queued(user, "password_reset", REQUEST_EMAIL_SECONDS):
        return
    mail.queue(user, "password_reset")
    db.session.commit()


def send_password_reset(user, actor):
    """Support's "send password reset email": the link goes to the account's own address (audited); staff
    never see it, nor the password."""
    _check(actor, user, "reset_link")
    mail.queue(user, "password_reset")
    audit.record("password_reset_email", "User", user.id, actor=actor)
    db.session.commit()


def user_for_reset(token):
    """The user a reset link is for, or AccountError (expired, used, or forged)."""
    try:
        data = _reset_serializer().loads(token, max_age=RESET_LINK_HOURS * 3600)
    except SignatureExpired:
        raise AccountError("This link has expired. Ask for a new one on the login page.") from None
    except BadSignature:
        raise AccountError("This link is not valid. Ask for a new one on the login page.") from None
    user = db.session.get(User, data.get("user"))
    if user is None or user.is_banned or data.get("fp") != _reset_fingerprint(user):
        raise AccountError("This link has already been used or is no longer valid. Ask for a new one on the login page.")
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


@mail.message("ban_notice")
def _ban_message(user, params):
    return {"user": user, "reason": params.get("reason")} if user is not None else None


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
    if user.role == "customer":
        mail.queue(user, "ban_notice", reason=reason)
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
        was = User(id=user.id, role=old_role, is_banned=user.is_banned, app_id=user.app_id)
        judge = was if actor.id == user.id else actor
        _check(judge, was, "edit")
        if new_password:
            _check(judge, was, "set_password")
        if user.role != old_role:
            _check(judge, was, "change_role")
    if user.email or user.app_id is None:  # a client app's user may have no address at all
        user.email = normalise_email(user.email)
    if new_password:
        check_password_policy(new_password, user.email)
        user.set_password(new_password)
    if not is_created and (new_password or user.role != old_role):
        revoke_sessions(user, actor, "password change" if new_password else "role change")


# --- email verification and change of address ---

VERIFY_LINK_DAYS = 7
CHANGE_EMAIL_HOURS = 24


def _verify_serializer():
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="neurapix-verify-email")


def _change_serializer():
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="neurapix-change-email")


@mail.message("verify_email")
def _verify_message(user, _params):
    if user is None or user.email_verified_at:
        return None
    token = _verify_serializer().dumps({"user": user.id, "email": user.email})
    return {"user": user, "link": absolute_url("auth.verify_email", token=token), "days": VERIFY_LINK_DAYS}


def resend_verification(user):
    if user.email_verified_at:
        raise AccountError("Your email address is already confirmed.")
    if mail.recently_queued(user, "verify_email", REQUEST_EMAIL_SECONDS):
        raise AccountError("We sent one less than a minute ago: check your inbox (and spam folder) first.")
    mail.queue(user, "verify_email")
    db.session.commit()


def _mark_verified(user):
    """The address is the customer's (the caller commits): stamp it and grant the welcome credits once."""
    user.email_verified_at = utcnow()
    welcome = settings.get("customers.welcome_credits")
    if welcome and user.role == "customer":
        credits.grant(user.id, welcome, kind="grant", reason="Welcome credits",
                      idempotency_key=f"welcome:{user.id}")
    referrals.on_verified(user)
    audit.record("email_verified", "User", user.id, new={"email": user.email}, actor=user)


def verify_email(token):
    """Follow the emailed link: the user, now verified; AccountError for a forged, expired or stale link."""
    try:
        data = _verify_serializer().loads(token, max_age=VERIFY_LINK_DAYS * 86400)
    except SignatureExpired:
        raise AccountError("This link has expired. Log in and ask for a new one on your account page.") from None
    except BadSignature:
        raise AccountError("This link is not valid.") from None
    user = db.session.get(User, data.get("user"))
    if user is None or user.email != data.get("email"):
        raise AccountError("This link is for an address the account no longer uses.")
    if not user.email_verified_at:
        _mark_verified(user)
        db.session.commit()
    return user


@mail.message("change_email")
def _change_message(user, params):
    new_email = params.get("new_email")
    if user is None or not new_email:
        return None
    token = _change_serializer().dumps({"user": user.id, "new": new_email, "fp": _reset_fingerprint(user),
                                        "old": user.email})
    return {"user": user, "new_email": new_email, "link": absolute_url("auth.confirm_email", token=token),
            "hours": CHANGE_EMAIL_HOURS}


def request_email_change(user, new_email, password):
    """Email a confirmation link to the new address; the account keeps its address until it is followed."""
    if not passwords.verify(user.password_hash, password):
        raise AccountError("The password is wrong.")
    new_email = normalise_email(new_email)
    if new_email == user.email:
        raise AccountError("That is already your address.")
    if find_by_email(new_email):
        raise AccountError("Another account uses this address.")
    mail.queue(user, "change_email", to=new_email, new_email=new_email)
    audit.record("email_change_requested", "User", user.id, actor=user)
    db.session.commit()


def confirm_email_change(token):
    """Follow the link sent to the new address: the account now uses it (verified); sessions elsewhere end."""
    try:
        data = _change_serializer().loads(token, max_age=CHANGE_EMAIL_HOURS * 3600)
    except SignatureExpired:
        raise AccountError("This link has expired. Ask for the change again on your account page.") from None
    except BadSignature:
        raise AccountError("This link is not valid.") from None
    user = db.session.get(User, data.get("user"))
    if user is None or user.email != data.get("old") or data.get("fp") != _reset_fingerprint(user):
        raise AccountError("This link has already been used or is no longer valid.")
    if find_by_email(data["new"]):
        raise AccountError("Another account uses this address now.")
    old = user.email
    user.email = data["new"]
    audit.record("email_change", "User", user.id, old={"email": old}, new={"email": user.email}, actor=user)
    # Verified: the link reached this address. Welcome credits stay once per account (idempotency key).
    if user.email_verified_at:
        user.email_verified_at = utcnow()
    else:
        _mark_verified(user)
    revoke_sessions(user, user, "email change")
    db.session.commit()
    return user


def set_email_preferences(user, job_failed, language=None):
    """The customer's own choice of optional emails (transactional ones are always sent) and of the language
    emails are written in (empty: the site's default). AccountError for a malformed language code."""
    language = (language or "").strip().lower() or None
    if language is not None and not cms.LANGUAGE.fullmatch(language):
        raise AccountError("Use a language code such as en, de or pt-br, or leave it empty.")
    old = {"job_failed": user.email_job_failed, "language": user.language}
    new = {"job_failed": bool(job_failed), "language": language}
    if old != new:
        audit.record("email_preferences", "User", user.id, old=old, new=new, actor=user)
        user.email_job_failed, user.language = new["job_failed"], language
    db.session.commit()


# --- the customer's own data: download and deletion ---


def _when(value):
    return value.isoformat() if value else None


def export_data(user):
    """Everything we hold about the customer, as JSON-ready data (what the "download my data" link gives)."""
    def rows(model, *order):
        return db.session.scalars(sa.select(model).where(model.user_id == user.id).order_by(*order)).all()

    return {
        "account": {"email": user.email, "created_at": _when(user.created_at), "role": user.role,
                    "balance": user.balance, "plan": user.plan.name if user.plan else None,
                    "email_verified_at": _when(user.email_verified_at), "last_login_at": _when(user.last_login_at),
                    "two_factor": user.has_2fa, "email_job_failed": user.email_job_failed, "language": user.language,
                    "subscription_status": user.subscription_status},
        "jobs": [{"id": j.id, "function": j.function_key, "status": j.status, "credits_charged": j.credits_charged,
                  "refunded": j.refunded, "input": j.input_meta, "message": j.customer_message,
                  "created_at": _when(j.created_at), "finished_at": _when(j.finished_at)}
                 for j in rows(Job, Job.id)],
        "credit_ledger": [{"amount": r.amount, "balance_after": r.balance_after, "kind": r.kind, "reason": r.reason,
                           "job_id": r.job_id, "payment_id": r.payment_id, "created_at": _when(r.created_at)}
                          for r in rows(CreditLedger, CreditLedger.id)],
        "orders": [{"id": o.id, "plan": o.plan_name, "gateway": o.gateway, "amount": o.amount,
                    "currency": o.currency, "credits": o.credits, "status": o.status,
                    "created_at": _when(o.created_at)} for o in rows(Order, Order.id)],
        "payments": [{"id": p.id, "provider": p.provider, "status": p.status, "amount": p.amount,
                      "currency": p.currency, "credits": p.credits, "plan": p.plan_name,
                      "created_at": _when(p.created_at)} for p in rows(Payment, Payment.id)],
        "emails": [{"template": e.template, "to": e.to_address, "status": e.status, "created_at": _when(e.created_at)}
                   for e in rows(EmailLog, EmailLog.id)],
    }


def delete_own_account(user, password):
    """The customer closes their account: files deleted; jobs deleted or kept without files (a setting);
    the user row stays anonymised for the payments and ledger that name it (kept for accounting)."""
    if user.role != "customer":
        raise AccountError("Staff accounts are removed by an admin.")
    if not passwords.verify(user.password_hash, password):
        raise AccountError("The password is wrong.")
    active = db.session.scalars(sa.select(Job.id).where(Job.user_id == user.id, Job.status.in_(jobs.ACTIVE))).all()
    for job_id in active:
        jobs.cancel(job_id, actor=user)
    refs = [ref for pair in db.session.execute(sa.select(Job.input_ref, Job.output_ref).where(Job.user_id == user.id))
            for ref in pair if ref]
    own_jobs = Job.__table__.c.user_id == user.id
    if settings.get("customers.deleted_jobs") == "delete":
        db.session.execute(sa.delete(Job).where(own_jobs))
    else:
        db.session.execute(sa.update(Job).where(own_jobs).values(
            input_ref=None, output_ref=None, input_meta={}, error=None, customer_message=None, provider_job_id=None))
    anonymous = f"deleted-{user.id}@deleted.invalid"
    # The log keeps that messages were sent, not to whom (params may hold a new address asked for).
    db.session.execute(sa.update(EmailLog).where(EmailLog.user_id == user.id).values(to_address=anonymous, params={}))
    user.email, user.deleted_at = anonymous, utcnow()
    user.set_password(secrets.token_urlsafe(32))  # nobody knows it: the account can never log in again
    user.is_banned, user.ban_reason = True, "Deleted by its owner"
    user.totp_secret = user.recovery_codes = user.email_verified_at = None
    audit.record("account_deleted", "User", user.id, new={"jobs": settings.get("customers.deleted_jobs")}, actor=user)
    revoke_sessions(user, user, "account deleted")
    db.session.commit()
    for ref in refs:
        try:
            storage.delete(ref)
        except Exception:
            # The account is gone either way; a file left behind is logged by reference, for staff to remove.
            log.exception("could not delete %s of deleted user %s", ref, user.id)
