"""Coupons (redemption codes): credits on /account, or a percentage off a plan at checkout; and their uses.

A customer uses a code at most once (unique coupon × user); `uses` counts every use against `max_uses`.
"""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.types import utcnow

COUPON_KINDS = ("credits", "percent")


class Coupon(db.Model):
    __tablename__ = "coupons"
    __table_args__ = (
        sa.CheckConstraint(f"kind IN {COUPON_KINDS!r}", name="kind_known"),
        sa.CheckConstraint("credits >= 0 AND percent_off >= 0 AND percent_off <= 100", name="amounts_in_range"),
        sa.CheckConstraint("max_uses IS NULL OR uses <= max_uses", name="uses_within_max"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)  # stored upper case
    kind: Mapped[str] = mapped_column(sa.String(16), default="credits")
    credits: Mapped[int] = mapped_column(default=0, server_default="0")
    percent_off: Mapped[int] = mapped_column(default=0, server_default="0")
    # A percent-off code for one plan only; empty: any plan.
    plan_id: Mapped[int | None] = mapped_column(sa.ForeignKey("plans.id", ondelete="SET NULL"), index=True)
    max_uses: Mapped[int | None] = mapped_column()  # in all; empty: unlimited
    uses: Mapped[int] = mapped_column(default=0, server_default="0")
    expires_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    enabled: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    batch: Mapped[str | None] = mapped_column(sa.String(40), index=True)  # the bulk generation it came from
    stripe_coupon_id: Mapped[str | None] = mapped_column(sa.String(64))  # Stripe's copy of a percent-off code
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, index=True)

    plan = relationship("Plan", lazy="joined")

    def __str__(self):
        return self.code


class CouponRedemption(db.Model):
    __tablename__ = "coupon_redemptions"
    __table_args__ = (sa.UniqueConstraint("coupon_id", "user_id", name="once_per_customer"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    coupon_id: Mapped[int] = mapped_column(sa.ForeignKey("coupons.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(sa.ForeignKey("orders.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, index=True)

    coupon = relationship("Coupon", lazy="joined")
    user = relationship("User", lazy="joined")

    def __str__(self):
        return f"{self.coupon.code if self.coupon else self.coupon_id} by user #{self.user_id}"
