"""The catalog: AI back ends (Provider) and the functions customers buy (AIFunction).

Deleting either never touches history: jobs keep their own copy of the keys and the
foreign keys are ON DELETE SET NULL.
"""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.types import JSONType, secret, utcnow

IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")


class Provider(db.Model):
    __tablename__ = "providers"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(64), index=True)  # registry key: which plugin runs it
    name: Mapped[str] = mapped_column(sa.String(120), unique=True)
    enabled: Mapped[bool] = mapped_column(default=True, server_default=sa.true(), index=True)
    config: Mapped[dict] = mapped_column(JSONType, default=dict)
    # Fernet token of a JSON object of secret fields (API tokens); see services.crypto.
    secrets: Mapped[str | None] = mapped_column(sa.Text, info=secret())
    last_checked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_status: Mapped[str | None] = mapped_column(sa.String(16))
    last_latency_ms: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    functions = relationship("AIFunction", back_populates="provider", passive_deletes=True)

    def __str__(self):
        return self.name if self.enabled else f"{self.name} (disabled)"


class AIFunction(db.Model):
    __tablename__ = "ai_functions"
    __table_args__ = (
        sa.CheckConstraint("price_per_use >= 0", name="price_not_negative"),
        sa.CheckConstraint("max_file_size > 0", name="max_file_size_positive"),
        sa.CheckConstraint("daily_limit IS NULL OR daily_limit >= 0", name="daily_limit_not_negative"),
        sa.CheckConstraint("output_format IN ('PNG', 'WEBP', 'JPEG')", name="output_format_known"),
        sa.CheckConstraint("output_quality BETWEEN 1 AND 100", name="output_quality_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    price_per_use: Mapped[int] = mapped_column(default=1)  # credits
    enabled: Mapped[bool] = mapped_column(default=False, server_default=sa.false(), index=True)
    provider_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("providers.id", ondelete="SET NULL"), index=True
    )
    provider_config: Mapped[dict] = mapped_column(JSONType, default=dict)
    max_file_size: Mapped[int] = mapped_column(default=10 * 1024 * 1024)  # bytes
    allowed_formats: Mapped[list] = mapped_column(JSONType, default=lambda: ["JPEG", "PNG", "WEBP"])
    priority: Mapped[int] = mapped_column(default=0, index=True)  # higher is listed and served first
    daily_limit: Mapped[int | None]  # uses per customer per day; empty means unlimited
    # How results made on our own CPU are encoded: PNG (fast compression), WEBP or JPEG at output_quality.
    output_format: Mapped[str] = mapped_column(sa.String(8), default="PNG", server_default="PNG")
    output_quality: Mapped[int] = mapped_column(default=90, server_default="90")
    # What customers may set on /f/<key> besides the image: a list of definitions checked by
    # services.parameters (keys, types, bounds, options, price rules).
    parameters: Mapped[list] = mapped_column(JSONType, default=list, server_default="[]")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    provider = relationship("Provider", back_populates="functions", lazy="joined")
    fallbacks = relationship("FunctionFallback", order_by="FunctionFallback.position", cascade="all, delete-orphan",
                             passive_deletes=True, back_populates="function")

    def __str__(self):
        return f"{self.name} ({self.key})"


class FunctionFallback(db.Model):
    """One step of a function's fallback chain: used, in position order, once the primary gives up."""

    __tablename__ = "function_fallbacks"
    __table_args__ = (sa.UniqueConstraint("function_id", "position", name="function_position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    function_id: Mapped[int] = mapped_column(sa.ForeignKey("ai_functions.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(default=1)
    provider_id: Mapped[int] = mapped_column(sa.ForeignKey("providers.id", ondelete="CASCADE"), index=True)
    provider_config: Mapped[dict] = mapped_column(JSONType, default=dict)

    function = relationship("AIFunction", back_populates="fallbacks")
    provider = relationship("Provider", lazy="joined")

    def __str__(self):
        return f"#{self.position} {self.provider}"
