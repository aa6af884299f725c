"""Coupons: redeeming a credits code on /account, pricing a percent-off code into a checkout order, and the
admin's bulk generation and CSV export. Limits hold under concurrency by construction: one conditional UPDATE
of `uses` (never past max_uses) and a unique (coupon, customer) row, in the same transaction.
"""
import re
import secrets
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Coupon, CouponRedemption, Plan
from app.models.types import utcnow
from app.services import audit, credits

# No 0/O or 1/I/L: codes are read aloud and typed from paper.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
RANDOM_LENGTH = 8
MAX_BULK = 1000
CODE_SHAPE = re.compile(r"[A-Z0-9][A-Z0-9-]{2,39}")
CSV_HEADER = ("code", "kind", "credits", "percent_off", "plan", "max_uses", "uses", "expires_at", "enabled", "batch")


class CouponError(ValueError):
    """Why a code cannot be used or created; safe to show."""


def normalise(code):
    return (code or "").strip().upper()


def _usable(code):
    """The coupon behind a typed code if it can be used now, else CouponError (the same words for unknown and
    disabled codes, so guessing learns nothing)."""
    coupon = db.session.scalars(sa.select(Coupon).where(Coupon.code == normalise(code))).first()
    if coupon is None or not coupon.enabled:
        raise CouponError("This code is not valid.")
    if coupon.expires_at and coupon.expires_at <= utcnow():
        raise CouponError("This code has expired.")
    if coupon.max_uses is not None and coupon.uses >= coupon.max_uses:
        raise CouponError("This code has been used up.")
    return coupon


def _count_use(coupon, user, order_id=None):
    """Count one use by `user` in the caller's transaction; CouponError if used up or already used by them."""
    counted = db.session.execute(
        sa.update(Coupon).where(Coupon.id == coupon.id, sa.or_(Coupon.max_uses.is_(None), Coupon.uses < Coupon.max_uses))
        .values(uses=Coupon.uses + 1).returning(Coupon.id)
    ).scalar()
    if counted is None:
        raise CouponError("This code has been used up.")
    try:
        with db.session.begin_nested():
            db.session.add(CouponRedemption(coupon_id=coupon.id, user_id=user.id, order_id=order_id))
    except IntegrityError:
        raise CouponError("You have already used this code.") from None


def redeem(user, code):
    """A credits code typed on /account: the credits once per customer, within the code's limits. Returns the
    credits added; CouponError (nothing changed) otherwise."""
    try:
        coupon = _usable(code)
        if coupon.kind != "credits":
            raise CouponError(f"This code gives {coupon.percent_off}% off"
                              f"{' the ' + coupon.plan.name + ' plan' if coupon.plan else ''}: enter it on the "
                              "pricing page when you buy.")
        _count_use(coupon, user)
        credits.grant(user.id, coupon.credits, kind="grant", reason=f"Code {coupon.code}",
                      idempotency_key=f"coupon:{coupon.id}:user:{user.id}")
        audit.record("redeem", "Coupon", coupon.id, new={"code": coupon.code, "credits": coupon.credits}, actor=user)
    except CouponError:
        db.session.rollback()
        raise
    db.session.commit()
    return coupon.credits


def discounted(price, percent_off):
    """The price after `percent_off`, the discount rounded half up to the minor unit as Stripe rounds it."""
    return price - (price * percent_off + 50) // 100


def for_checkout(user, plan, code):
    """The percent-off coupon a buyer typed for `plan`, checked but not yet counted (that happens when the order
    is paid); None for an empty code. CouponError says why it does not apply."""
    if not normalise(code):
        return None
    coupon = _usable(code)
    if coupon.kind != "percent":
        raise CouponError("This code adds credits: redeem it on your account page.")
    if coupon.plan_id is not None and coupon.plan_id != plan.id:
        raise CouponError(f"This code is for the {coupon.plan.name if coupon.plan else 'another'} plan only.")
    used = db.session.scalar(sa.select(CouponRedemption.id).where(CouponRedemption.coupon_id == coupon.id,
                                                                  CouponRedemption.user_id == user.id))
    if used:
        raise CouponError("You have already used this code.")
    return coupon


def count_paid_order(order, user):
    """An order priced with a coupon was paid: count that use (the caller's transaction). The money is already
    taken at the discounted price, so a code used up meanwhile is honoured for this order, and noted."""
    if order.coupon_id is None:
        return
    coupon = db.session.get(Coupon, order.coupon_id)
    if coupon is None:
        return
    try:
        with db.session.begin_nested():
            _count_use(coupon, user, order.id)
    except CouponError as exc:
        audit.record("coupon_over_limit", "Coupon", coupon.id, new={"order": order.id, "reason": str(exc)})


# --- admin ---


def _random_code(prefix):
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))


def check(coupon):
    """The admin form's rules for one coupon (normalised in place); CouponError says what to correct."""
    coupon.code = normalise(coupon.code)
    if not CODE_SHAPE.fullmatch(coupon.code or ""):
        raise CouponError("A code is 3 to 40 letters, digits or dashes.")
    if coupon.kind == "credits" and not (coupon.credits or 0) > 0:
        raise CouponError("A credits code needs a number of credits above 0.")
    if coupon.kind == "percent" and not 1 <= (coupon.percent_off or 0) <= 100:
        raise CouponError("A percent-off code needs a percentage from 1 to 100.")
    if coupon.max_uses is not None and coupon.max_uses < 1:
        raise CouponError("Maximum uses must be at least 1, or empty for no limit.")


def generate(actor, *, count, prefix, kind, credits_each=0, percent_off=0, plan_id=None, max_uses=None,
             expires_at=None):
    """Bulk-create `count` random codes (up to MAX_BULK) sharing one batch name; returns the batch."""
    prefix = normalise(prefix)
    if not re.fullmatch(r"[A-Z0-9-]{0,20}", prefix):
        raise CouponError("The prefix is up to 20 letters, digits or dashes.")
    if not 1 <= count <= MAX_BULK:
        raise CouponError(f"Generate from 1 to {MAX_BULK} codes at once.")
    if plan_id is not None and db.session.get(Plan, plan_id) is None:
        raise CouponError("That plan does not exist.")
    batch = f"{prefix or 'BATCH'}-{datetime.now(timezone.utc):%Y%m%d%H%M%S}"
    codes = set()
    while len(codes) < count:
        codes.add(_random_code(prefix))
    taken = set(db.session.scalars(sa.select(Coupon.code).where(Coupon.code.in_(codes))))
    rows = []
    for code in sorted(codes - taken):
        coupon = Coupon(code=code, kind=kind, credits=credits_each if kind == "credits" else 0,
                        percent_off=percent_off if kind == "percent" else 0, plan_id=plan_id, max_uses=max_uses,
                        expires_at=expires_at, enabled=True, batch=batch)
        check(coupon)
        rows.append(coupon)
    db.session.add_all(rows)
    audit.record("generate", "Coupon", batch, new={"count": len(rows), "kind": kind, "credits": credits_each,
                                                   "percent_off": percent_off, "max_uses": max_uses}, actor=actor)
    db.session.commit()
    return batch


def csv_rows(batch=None):
    stmt = sa.select(Coupon).order_by(Coupon.id)
    if batch:
        stmt = stmt.where(Coupon.batch == batch)
    for c in db.session.scalars(stmt).yield_per(500):
        yield (c.code, c.kind, c.credits, c.percent_off, c.plan.name if c.plan else "", c.max_uses, c.uses,
               c.expires_at, c.enabled, c.batch)
