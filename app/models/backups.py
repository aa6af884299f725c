"""Backups made of this installation: one row per archive, with where it is stored and what it holds.

The archive itself lives in storage (local disk or S3); this row is this server's record of it.
"""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import JSONType, utcnow


class Backup(db.Model):
    __tablename__ = "backups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))  # the archive's file name
    ref: Mapped[str | None] = mapped_column(sa.String(500))  # storage ref, once stored
    destination: Mapped[str] = mapped_column(sa.String(8), default="disk")  # disk | s3
    status: Mapped[str] = mapped_column(sa.String(16), default="queued", index=True)  # queued running ok failed
    trigger: Mapped[str] = mapped_column(sa.String(16), default="manual")  # manual | cli | schedule
    # The day a scheduled backup stands for: unique, so two scheduler ticks can never both make it.
    schedule_slot: Mapped[str | None] = mapped_column(sa.String(10), unique=True)
    with_files: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    size_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    row_counts: Mapped[dict | None] = mapped_column(JSONType)
    alembic_revision: Mapped[str | None] = mapped_column(sa.String(64))
    error: Mapped[str | None] = mapped_column(sa.Text)
    requested_by: Mapped[str | None] = mapped_column(sa.String(254))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    @property
    def total_rows(self):
        return sum((self.row_counts or {}).values())

    def __str__(self):
        return self.name
