"""Passwords: the policy every place that sets one applies, and the one hash check every login makes.

The policy is length plus zxcvbn (a maintained port of Dropbox's estimator with its common-password lists),
so "password1234" or "qwertyuiop" is refused with the reason, not just "too weak".
"""
from werkzeug.security import check_password_hash, generate_password_hash
from zxcvbn import zxcvbn

MIN_LENGTH = 10
MAX_LENGTH = 128
# zxcvbn scores 0-4; 0 and 1 are common passwords, keyboard walks, repeats and sequences.
MIN_SCORE = 2
# Checked when no account matches, so an unknown email costs the same work as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-real-password: timing equaliser")


def policy_error(password, email=None):
    """Why this password is refused, or None when it is acceptable."""
    password = password or ""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    inputs = [part for part in (email or "").lower().replace("@", " ").replace(".", " ").split() if part]
    result = zxcvbn(password[:100], user_inputs=inputs)
    if result["score"] < MIN_SCORE:
        warning = result["feedback"].get("warning") or "This password is easy to guess."
        return f"{warning.rstrip('.')}. Choose a longer, less common password (a few unrelated words work well)."
    return None


def verify(password_hash, password):
    """The one password check: against the user's hash, or a dummy one when there is no user."""
    return check_password_hash(password_hash or _DUMMY_HASH, password or "") and bool(password_hash)
