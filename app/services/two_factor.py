"""Two-factor authentication: TOTP (RFC 6238, pyotp) with a server-rendered QR code, single-use recovery
codes stored hashed, and the rule that no code is ever accepted twice.

The secret is encrypted at rest like every other secret; the last accepted time step is kept on the user and
moved forward with one conditional UPDATE, so two requests racing with the same code cannot both pass.
"""
import hashlib
import hmac
import secrets
import time

import pyotp
import segno
import sqlalchemy as sa

from app.extensions import db
from app.models import User
from app.services import audit, settings
from app.services.crypto import decrypt_json, encrypt_json

RECOVERY_CODES = 10
# One step either side of now: phones whose clocks drift by up to 30 s still work.
VALID_WINDOW = 1


class CodeError(ValueError):
    """A code that was not accepted; the message is safe to show."""


def new_secret():
    return pyotp.random_base32()


def seal(secret):
    """The secret encrypted, for keeping between the enrolment page and its confirmation."""
    return encrypt_json(secret)


def unseal(token):
    return decrypt_json(token) if token else None


def provisioning_uri(user, secret):
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=settings.get("site.name"))


def qr_svg(uri):
    """The otpauth:// URI as an inline SVG QR code, drawn on our server (nothing loads from elsewhere)."""
    return segno.make(uri, error="m").svg_inline(scale=5, dark="#000", light="#fff")


def _hash_code(code):
    return hashlib.sha256(code.encode()).hexdigest()


def _normalise(code):
    return "".join((code or "").split()).replace("-", "").lower()


def _matching_step(secret, code, now=None):
    """The time step `code` belongs to (within the window), or None."""
    totp = pyotp.TOTP(secret)
    current = totp.timecode(time.time() if now is None else now)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _new_recovery_codes():
    codes = [secrets.token_hex(5) for _ in range(RECOVERY_CODES)]
    return [f"{c[:5]}-{c[5:]}" for c in codes], [_hash_code(c) for c in codes]


def enable(user, secret, code):
    """Turn 2FA on once the person proves their app has the secret. Returns the recovery codes (shown once)."""
    step = _matching_step(secret, _normalise(code))
    if step is None:
        raise CodeError("That code does not match. Check the time on your phone and enter the current code.")
    shown, hashed = _new_recovery_codes()
    user.totp_secret, user.totp_last_step, user.recovery_codes = encrypt_json(secret), step, hashed
    audit.record("2fa_enrol", "User", user.id, actor=user)
    db.session.commit()
    return shown


def verify(user, code):
    """Check a login code: a current TOTP code not used before, or an unused recovery code.

    Returns "totp" or "recovery"; raises CodeError. Commits the used step or the spent recovery code.
    """
    code = _normalise(code)
    secret = decrypt_json(user.totp_secret) if user.totp_secret else None
    if not secret:
        raise CodeError("Two-factor authentication is not set up for this account.")
    if code.isdigit() and len(code) == 6:
        step = _matching_step(secret, code)
        if step is not None:
            # Only a step later than the last accepted one: a code (or an older one) never works twice.
            moved = db.session.execute(
                sa.update(User).where(User.id == user.id, sa.or_(User.totp_last_step.is_(None),
                                                                 User.totp_last_step < step))
                .values(totp_last_step=step).returning(User.id)
            ).scalar()
            db.session.commit()
            if moved:
                return "totp"
            raise CodeError("This code was already used. Wait for the next one.")
        raise CodeError("That code is not valid. Enter the current 6-digit code from your app, or a recovery code.")
    # The row lock makes two logins racing with the same recovery code spend it once.
    stored = db.session.execute(sa.select(User.recovery_codes).where(User.id == user.id).with_for_update()).scalar()
    remaining = list(stored or [])
    digest = _hash_code(code)
    if digest not in remaining:
        db.session.rollback()
        raise CodeError("That code is not valid. Enter the current 6-digit code from your app, or a recovery code.")
    remaining.remove(digest)
    db.session.execute(sa.update(User).where(User.id == user.id).values(recovery_codes=remaining))
    audit.record("2fa_recovery_code_used", "User", user.id, new={"recovery_codes_left": len(remaining)}, actor=user)
    db.session.commit()
    return "recovery"


def recovery_codes_left(user):
    return len(user.recovery_codes or [])


def remove(user, actor, action):
    """Turn 2FA off (the person themselves, or an admin's reset); audited as `action`."""
    had = bool(user.totp_secret)
    user.totp_secret, user.totp_last_step, user.recovery_codes = None, None, None
    audit.record(action, "User", user.id, old={"2fa": had}, new={"2fa": False}, actor=actor)
    db.session.commit()


def required_for(user):
    """Whether the owner requires 2FA for this person's staff role (Settings → Security)."""
    return user.is_staff and bool(settings.get(f"security.require_2fa_{user.role}"))
