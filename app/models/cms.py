"""Site content: pages the owner writes in the admin, with per-language translations."""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import JSONType, utcnow


class Page(db.Model):
    __tablename__ = "pages"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(120), unique=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    html_content: Mapped[str] = mapped_column(sa.Text, default="")
    seo_title: Mapped[str | None] = mapped_column(sa.String(200))
    seo_description: Mapped[str | None] = mapped_column(sa.String(500))
    is_published: Mapped[bool] = mapped_column(default=False, server_default=sa.false(), index=True)
    # {"de": {"title": ..., "html_content": ..., "seo_title": ..., "seo_description": ...}, ...}
    translations: Mapped[dict] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    def __str__(self):
        return self.title
