"""Money and credits: plans customers buy, payments received, and the credit ledger.

The ledger is append-only: a correction is a new row, never an edit.
"""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.types import JSONType, utcnow

PLAN_KIND_LABELS = {"pack": "One-time credit pack", "monthly": "Monthly subscription", "yearly": "Yearly subscription"}
PLAN_KINDS = tuple(PLAN_KIND_LABELS)
PAYMENT_PROVIDERS = ("stripe", "paypal", "manual")
# "review": money arrived that matched no pending order of ours, or not its amount: recorded, nothing credited.
PAYMENT_STATUSES = ("pending", "succeeded", "failed", "refunded", "review")
ORDER_GATEWAYS = ("stripe", "paypal")
ORDER_STATUSES = ("pending", "paid", "failed")


class Plan(db.Model):
    __tablename__ = "plans"
    __table_args__ = (
        sa.CheckConstraint(f"kind IN {PLAN_KINDS!r}", name="kind_known"),
        sa.CheckConstraint("price >= 0 AND credits >= 0", name="amounts_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120), unique=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    price: Mapped[int] = mapped_column(default=0)  # minor units (cents)
    currency: Mapped[str] = mapped_column(sa.String(3), default="USD")
    kind: Mapped[str] = mapped_column(sa.String(16), default="pack")
    credits: Mapped[int] = mapped_column(default=0)  # per purchase (pack) or per period
    limits: Mapped[dict] = mapped_column(JSONType, default=dict)
    hidden: Mapped[bool] = mapped_column(default=False, server_default=sa.false(), index=True)
    stripe_price_id: Mapped[str | None] = mapped_column(sa.String(120))
    sort_order: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)

    @property
    def price_display(self):
        return f"{self.price / 100:,.2f} {self.currency}"

    def __str__(self):
        return self.name


class Payment(db.Model):
    __tablename__ = "payments"
    __table_args__ = (
        sa.CheckConstraint(f"provider IN {PAYMENT_PROVIDERS!r}", name="provider_known"),
        sa.CheckConstraint(f"status IN {PAYMENT_STATUSES!r}", name="status_known"),
        sa.Index("ix_payments_user_id_status", "user_id", "status"),  # a user's total spend
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Empty only for a payment under review that names no order of ours (so no known buyer).
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(sa.ForeignKey("orders.id", ondelete="SET NULL"), index=True)
    plan_id: Mapped[int | None] = mapped_column(sa.ForeignKey("plans.id", ondelete="SET NULL"), index=True)
    plan_name: Mapped[str | None] = mapped_column(sa.String(120))  # kept if the plan is deleted
    provider: Mapped[str] = mapped_column(sa.String(16), default="manual", index=True)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending", index=True)
    amount: Mapped[int] = mapped_column(default=0)  # minor units
    currency: Mapped[str] = mapped_column(sa.String(3), default="USD")
    credits: Mapped[int] = mapped_column(default=0)
    refunded_credits: Mapped[int] = mapped_column(default=0, server_default="0")  # taken back by refunds so far
    external_id: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    event_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    note: Mapped[str | None] = mapped_column(sa.Text)
    review_reason: Mapped[str | None] = mapped_column(sa.String(500))  # why a payment needs review
    recorded_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, index=True)
    # Set on every write: the analytics rollups re-read the days of payments changed since (a late refund).
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, onupdate=utcnow,
                                                 server_default=sa.func.now(), index=True)

    user = relationship("User", foreign_keys=[user_id], lazy="joined")
    order = relationship("Order")
    plan = relationship("Plan", lazy="joined")
    recorded_by = relationship("User", foreign_keys=[recorded_by_id])


class Order(db.Model):
    """A purchase started on our site, written before the buyer goes to the gateway: what they may pay
    (amount, currency) and get (credits). Gateway events credit only against it."""

    __tablename__ = "orders"
    __table_args__ = (
        sa.CheckConstraint(f"gateway IN {ORDER_GATEWAYS!r}", name="gateway_known"),
        sa.CheckConstraint(f"status IN {ORDER_STATUSES!r}", name="status_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    plan_id: Mapped[int | None] = mapped_column(sa.ForeignKey("plans.id", ondelete="SET NULL"), index=True)
    plan_name: Mapped[str] = mapped_column(sa.String(120))  # the terms sold, kept if the plan changes or goes
    plan_kind: Mapped[str] = mapped_column(sa.String(16), default="pack")
    gateway: Mapped[str] = mapped_column(sa.String(16), index=True)
    amount: Mapped[int]  # minor units
    currency: Mapped[str] = mapped_column(sa.String(3))
    credits: Mapped[int]  # per purchase (pack) or per period (subscription)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending", index=True)
    gateway_reference: Mapped[str | None] = mapped_column(sa.String(255), index=True)  # Stripe session, PayPal order
    error: Mapped[str | None] = mapped_column(sa.String(500))  # why the gateway did not take the order
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, index=True)
    paid_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # A percent-off coupon priced into `amount`; its use is counted when the order is paid.
    coupon_id: Mapped[int | None] = mapped_column(sa.ForeignKey("coupons.id", ondelete="SET NULL"), index=True)

    user = relationship("User", lazy="joined")
    plan = relationship("Plan", lazy="joined")
    coupon = relationship("Coupon")

    def __str__(self):
        return f"Order #{self.id}"


class CreditLedger(db.Model):
    __tablename__ = "credit_ledger"
    __table_args__ = (
        # The admin's Credit ledger list and a user's timeline: each filter in id order from one index.
        sa.Index("ix_credit_ledger_user_id_id", "user_id", "id"),
        sa.Index("ix_credit_ledger_kind_id", "kind", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    amount: Mapped[int]  # signed: negative debits, positive grants and refunds
    balance_after: Mapped[int]
    kind: Mapped[str] = mapped_column(sa.String(16))  # debit, refund, grant, adjust, purchase
    reason: Mapped[str] = mapped_column(sa.String(500), default="")
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    job_id: Mapped[int | None] = mapped_column(sa.ForeignKey("jobs.id", ondelete="SET NULL"), index=True)
    payment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("payments.id", ondelete="SET NULL"), index=True)
    # Makes a grant or refund happen at most once (e.g. "refund:job:42").
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, index=True)

    user = relationship("User", foreign_keys=[user_id], lazy="joined")
    actor = relationship("User", foreign_keys=[actor_id])


class WebhookEvent(db.Model):
    """Every payment webhook event applied, once: its row commits with the event's side effects."""

    __tablename__ = "webhook_events"
    __table_args__ = (sa.UniqueConstraint("provider", "event_id", name="provider_event"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(sa.String(16))
    event_id: Mapped[str] = mapped_column(sa.String(255))
    event_type: Mapped[str] = mapped_column(sa.String(64), index=True)
    received_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, index=True)


@event.listens_for(CreditLedger, "before_update")
@event.listens_for(CreditLedger, "before_delete")
def _ledger_is_append_only(_mapper, _connection, _target):
    raise ValueError("The credit ledger is append-only: record a correcting entry instead.")
