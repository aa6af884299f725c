"""Public content around the tools: the owner's prompt gallery and landing-page examples, and the showcase of
results customers chose to share, with the reports visitors file against them."""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.types import utcnow

PROMPT_CATEGORIES = (("general", "General"), ("portrait", "Portraits"), ("product", "Product photos"),
                     ("landscape", "Landscapes"), ("restoration", "Restoration"), ("artistic", "Artistic"))
REPORT_REASONS = (("nsfw", "Sexual or explicit content"), ("violence", "Violence or gore"),
                  ("hate", "Hateful or abusive"), ("copyright", "Someone else's work or likeness"),
                  ("spam", "Spam or advertising"), ("other", "Something else"))
REPORT_STATUSES = ("pending", "resolved", "dismissed")


class Prompt(db.Model):
    """A curated prompt: "use this" opens its function with the prompt filled in."""

    __tablename__ = "prompts"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(255))
    prompt_text: Mapped[str] = mapped_column(sa.Text)
    category: Mapped[str] = mapped_column(sa.String(32), default="general", server_default="general", index=True)
    # Normalised "a,b,c" (lower-case words and hyphens): filterable with LIKE on PostgreSQL and SQLite alike.
    tags: Mapped[str] = mapped_column(sa.String(500), default="", server_default="")
    preview_ref: Mapped[str | None] = mapped_column(sa.String(500))
    preview_content_type: Mapped[str | None] = mapped_column(sa.String(64))
    function_id: Mapped[int | None] = mapped_column(sa.ForeignKey("ai_functions.id", ondelete="SET NULL"),
                                                    index=True)
    is_featured: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    is_published: Mapped[bool] = mapped_column(default=True, server_default=sa.true(), index=True)
    sort_order: Mapped[int] = mapped_column(default=0, server_default="0")
    usage_count: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    function = relationship("AIFunction")

    @property
    def tag_list(self):
        return [t for t in (self.tags or "").split(",") if t]

    def __str__(self):
        return self.title


class LandingExample(db.Model):
    """A before/after pair the owner shows on the landing page (and as its function's card image)."""

    __tablename__ = "landing_examples"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(120))
    caption: Mapped[str] = mapped_column(sa.String(300), default="", server_default="")
    function_id: Mapped[int | None] = mapped_column(sa.ForeignKey("ai_functions.id", ondelete="SET NULL"),
                                                    index=True)
    before_ref: Mapped[str | None] = mapped_column(sa.String(500))
    before_content_type: Mapped[str | None] = mapped_column(sa.String(64))
    after_ref: Mapped[str | None] = mapped_column(sa.String(500))
    after_content_type: Mapped[str | None] = mapped_column(sa.String(64))
    is_published: Mapped[bool] = mapped_column(default=True, server_default=sa.true(), index=True)
    sort_order: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)

    function = relationship("AIFunction")

    def __str__(self):
        return self.title


class ShowcaseItem(db.Model):
    """A finished job its owner shared. Moderation blurs it or soft-deletes it (a placeholder stays)."""

    __tablename__ = "showcase_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    function_key: Mapped[str] = mapped_column(sa.String(64), index=True)
    title: Mapped[str] = mapped_column(sa.String(120))
    is_blurred: Mapped[bool] = mapped_column(default=False, server_default=sa.false(), index=True)
    is_deleted: Mapped[bool] = mapped_column(default=False, server_default=sa.false(), index=True)
    deleted_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # Pending reports: the report queue's order, kept on the row so the queue never counts per request.
    report_count: Mapped[int] = mapped_column(default=0, server_default="0", index=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, index=True)

    job = relationship("Job")
    user = relationship("User")

    def __str__(self):
        return self.title


class ShowcaseReport(db.Model):
    __tablename__ = "showcase_reports"
    __table_args__ = (sa.CheckConstraint(f"status IN {REPORT_STATUSES!r}", name="status_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(sa.ForeignKey("showcase_items.id", ondelete="CASCADE"), index=True)
    reporter_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    reporter_ip: Mapped[str | None] = mapped_column(sa.String(64))
    reason: Mapped[str] = mapped_column(sa.String(32))
    details: Mapped[str] = mapped_column(sa.String(500), default="", server_default="")
    status: Mapped[str] = mapped_column(sa.String(16), default="pending", server_default="pending", index=True)
    resolved_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    resolved_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
