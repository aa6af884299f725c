"""Emails we send: one row per message, from queued to sent or failed, for the admin's read-only list.

The row holds who it was for, which template and what happened; never the body, so no link token is stored.
"""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import JSONType, utcnow

EMAIL_STATUSES = ("queued", "sent", "failed")


class EmailLog(db.Model):
    __tablename__ = "email_log"
    __table_args__ = (sa.CheckConstraint(f"status IN {EMAIL_STATUSES!r}", name="status_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    to_address: Mapped[str] = mapped_column(sa.String(254), index=True)
    template: Mapped[str] = mapped_column(sa.String(64), index=True)
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"), index=True)
    # Ids the message is built from when it is sent (job, payment, new address), never a token.
    params: Mapped[dict] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(sa.String(16), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    def __str__(self):
        return f"{self.template} to {self.to_address}"


class EmailTemplate(db.Model):
    """The owner's version of one message in one language; without a row the shipped file template is used.

    Subject, text and HTML are Jinja templates rendered in a sandbox (services/mail_templates.py)."""
    __tablename__ = "email_templates"
    __table_args__ = (sa.UniqueConstraint("name", "language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), index=True)
    language: Mapped[str] = mapped_column(sa.String(16))
    subject: Mapped[str] = mapped_column(sa.String(500))
    text: Mapped[str] = mapped_column(sa.Text)
    # Empty: the message goes out as plain text only.
    html: Mapped[str] = mapped_column(sa.Text, default="")
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))

    def __str__(self):
        return f"{self.name} ({self.language})"
