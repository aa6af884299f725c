"""Referrals: each customer's code and link, who referred a new sign-up, and the rewards (Settings → Customers),
each granted once through the ledger: the new customer on verification, both sides on the first paid order.

A referral from oneself (the same mailbox under another address) or past the daily limit of sign-ups sharing
one email domain is not recorded, so it earns nothing; sign-up itself goes on as usual.
"""
import re
import secrets
from datetime import timedelta

import sqlalchemy as sa
import sqlalchemy.orm
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Order, User
from app.models.types import utcnow
from app.services import audit, credits, settings

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
CODE_SHAPE = re.compile(r"[A-Z0-9]{4,16}")
# Where the site keeps the code a visitor arrived with (/?ref=CODE) until they sign up.
SESSION_KEY = "neurapix_ref"


def clean_code(raw):
    """A code as it may appear in ?ref=, or None: nothing else is kept in the session."""
    code = (raw or "").strip().upper()
    return code if CODE_SHAPE.fullmatch(code) else None


def code_for(user):
    """The customer's referral code, made when missing (unique; a clash is retried); the caller commits."""
    while not user.referral_code:
        candidate = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
        try:
            with db.session.begin_nested():
                db.session.execute(sa.update(User).where(User.id == user.id, User.referral_code.is_(None))
                                   .values(referral_code=candidate))
        except IntegrityError:
            continue
        db.session.refresh(user, ["referral_code"])
    return user.referral_code


def issue_code(user):
    """A customer without a code (an account from before referrals) asks for one from /account."""
    code = code_for(user)
    db.session.commit()
    return code


def _mailbox(email):
    """The mailbox behind an address: +tags and, for the local part, dots do not make another person."""
    local, _, domain = email.lower().partition("@")
    return local.split("+", 1)[0].replace(".", ""), domain


def attach(user, code):
    """At sign-up (the caller commits): remember who referred `user`, unless the rules refuse it."""
    code = clean_code(code)
    if not code:
        return None
    referrer = db.session.scalars(sa.select(User).where(User.referral_code == code)).first()
    if referrer is None or referrer.role != "customer" or referrer.is_banned:
        return None
    mailbox, domain = _mailbox(user.email)
    reason = None
    if referrer.id == user.id or _mailbox(referrer.email) == (mailbox, domain):
        reason = "self-referral"
    else:
        since = utcnow() - timedelta(hours=24)
        same_domain = db.session.scalar(sa.select(sa.func.count()).select_from(User).where(
            User.referred_by_id == referrer.id, User.created_at >= since,
            sa.func.lower(User.email).like(f"%@{domain}")))
        if same_domain >= settings.get("customers.referral_same_domain_daily"):
            reason = "same-domain limit"
    if reason:
        audit.record("referral_refused", "User", user.id, new={"referrer": referrer.id, "reason": reason})
        return None
    user.referred_by_id = referrer.id
    audit.record("referral", "User", user.id, new={"referrer": referrer.id})
    return referrer


def on_verified(user):
    """The referred customer confirmed their address (the caller commits): their sign-up reward, once."""
    amount = settings.get("customers.referral_signup_credits")
    if user.referred_by_id and amount:
        credits.grant(user.id, amount, kind="grant", reason="Referral: welcome bonus",
                      idempotency_key=f"referral:verified:{user.id}")


def on_paid_order(user, order):
    """A paid order (the caller's transaction): on the referred customer's first, reward both sides once."""
    if not user.referred_by_id:
        return
    paid = db.session.scalar(sa.select(sa.func.count()).select_from(Order).where(
        Order.user_id == user.id, Order.status == "paid", Order.id != order.id))
    if paid:
        return  # not their first
    referrer = db.session.get(User, user.referred_by_id)
    for who, key, amount in ((user, f"referral:referred:{user.id}", settings.get("customers.referral_referred_credits")),
                             (referrer, f"referral:referrer:{user.id}",
                              settings.get("customers.referral_referrer_credits"))):
        if who is not None and amount and not who.is_banned:
            credits.grant(who.id, amount, kind="grant", idempotency_key=key,
                          reason=f"Referral: first order of customer #{user.id} (order #{order.id})")


def top_referrers(limit=5):
    """[(referrer, number of customers they referred)], most first, for the admin dashboard."""
    referred = sa.orm.aliased(User)
    count = sa.func.count(referred.id).label("referred")
    rows = db.session.execute(sa.select(User, count).join(referred, referred.referred_by_id == User.id)
                              .group_by(User.id).order_by(count.desc(), User.id).limit(limit)).all()
    return [(user, n) for user, n in rows]
