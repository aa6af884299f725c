"""Column types and helpers shared by every model module.

JSON is stored as JSONB on PostgreSQL and as plain JSON text on SQLite.
"""
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def utcnow():
    return datetime.now(timezone.utc)


def secret(**kwargs):
    """Column info marking a value that is never shown, logged, audited or exported in clear."""
    return {"secret": True, **kwargs}
