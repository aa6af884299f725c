"""Client apps (seed 001): tenants that use the REST API with their own keys, users and webhooks.

App users are rows of the users table (app_id + external_id), so credits and jobs take the one path.
"""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.types import JSONType, secret, utcnow

DELIVERY_STATUSES = ("pending", "delivered", "retrying", "failed")


class ClientApp(db.Model):
    __tablename__ = "apps"
    __table_args__ = (
        sa.CheckConstraint("rate_limit_per_minute > 0", name="rate_limit_positive"),
        sa.CheckConstraint("max_jobs_in_flight > 0", name="jobs_in_flight_positive"),
        sa.CheckConstraint("starting_credits >= 0", name="starting_credits_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120), unique=True)
    enabled: Mapped[bool] = mapped_column(default=True, server_default=sa.true(), index=True)
    webhook_url: Mapped[str | None] = mapped_column(sa.String(2000))
    # Keys of the functions this app may use; empty means every function on the site.
    allowed_functions: Mapped[list] = mapped_column(JSONType, default=list)
    rate_limit_per_minute: Mapped[int] = mapped_column(default=60, server_default="60")
    max_jobs_in_flight: Mapped[int] = mapped_column(default=10, server_default="10")
    starting_credits: Mapped[int] = mapped_column(default=0, server_default="0")
    # Fernet token (services.crypto) of the HMAC secret that signs this app's webhooks.
    webhook_secret: Mapped[str | None] = mapped_column(sa.Text, info=secret())
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)

    keys = relationship("ApiKey", back_populates="app", order_by="ApiKey.id", passive_deletes=True)

    def __str__(self):
        return self.name if self.enabled else f"{self.name} (disabled)"


class ApiKey(db.Model):
    """A key is shown once; only its SHA-256 is kept. The prefix identifies it in lists and logs."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(sa.ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(120), default="")
    prefix: Mapped[str] = mapped_column(sa.String(24), index=True)
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True, info=secret())
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    app = relationship("ClientApp", back_populates="keys", lazy="joined")

    def __str__(self):
        return f"{self.prefix}… ({'revoked' if self.revoked_at else 'active'})"


class ApiIdempotency(db.Model):
    """One row per idempotency key an app used: inserted under a unique constraint in the same transaction
    as the work it guards, so concurrent retries wait for the first and replay its answer."""

    __tablename__ = "api_idempotency"
    __table_args__ = (sa.UniqueConstraint("app_id", "key", name="app_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(sa.ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(sa.String(255))
    request_hash: Mapped[str] = mapped_column(sa.String(64))  # endpoint + body, so a changed body is a 409
    status_code: Mapped[int | None]
    response: Mapped[dict | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, index=True)


class WebhookDelivery(db.Model):
    """One webhook a job's end sends to its app, and its latest attempt (every attempt is in `attempts`)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (sa.CheckConstraint(f"status IN {DELIVERY_STATUSES!r}", name="status_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(sa.ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int | None] = mapped_column(sa.ForeignKey("jobs.id", ondelete="SET NULL"), index=True)
    event: Mapped[str] = mapped_column(sa.String(32))
    url: Mapped[str] = mapped_column(sa.String(2000))
    payload: Mapped[dict] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending", index=True)
    attempt_count: Mapped[int] = mapped_column(default=0, server_default="0")
    last_status_code: Mapped[int | None]
    last_latency_ms: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    # [{at, status_code, latency_ms, excerpt, error}], newest last: the log of every attempt.
    attempts: Mapped[list] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    app = relationship("ClientApp", lazy="joined")

    def __str__(self):
        return f"Delivery #{self.id} ({self.event}, {self.status})"
