"""Encryption of secrets at rest with MultiFernet under ENCRYPTION_KEY, and their masking.

ENCRYPTION_KEY holds comma-separated keys, newest first, so keys can be rotated.
"""
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app

MASK = "••••"


def _fernet():
    keys = [k.strip() for k in (current_app.config["ENCRYPTION_KEY"] or "").split(",") if k.strip()]
    if not keys:
        raise RuntimeError("ENCRYPTION_KEY is not set: secrets cannot be stored or read.")
    return MultiFernet([Fernet(k.encode()) for k in keys])


def encrypt_json(value):
    return _fernet().encrypt(json.dumps(value).encode()).decode()


def decrypt_json(token):
    if not token:
        return {}
    try:
        return json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken as exc:
        raise RuntimeError("A stored secret cannot be decrypted with the configured ENCRYPTION_KEY.") from exc


def mask(value):
    """What a person may see of a secret: that it is set, and its last four characters."""
    if value in (None, ""):
        return ""
    text = str(value)
    return MASK + text[-4:] if len(text) > 8 else MASK


def merge_secrets(stored, entered, cleared=()):
    """The secrets to keep after an edit: an entered value replaces, a blank keeps, a cleared name goes."""
    merged = {k: v for k, v in stored.items() if k not in cleared}
    merged.update({k: v for k, v in entered.items() if v})
    return merged


def rotate(token):
    """Re-encrypt a token under the newest key (first in ENCRYPTION_KEY); readable by any listed key."""
    return _fernet().rotate(token.encode()).decode() if token else token
