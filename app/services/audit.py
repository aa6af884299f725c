"""The audit trail: one AuditLog row per change an admin makes, secrets masked.

Rows are added to the caller's session so they commit (or roll back) with the change itself.
"""
from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from flask import has_request_context, request
from flask_login import current_user

from app.extensions import db
from app.models import AuditLog
from app.services.crypto import MASK


def _plain(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _secret(column):
    return bool(column.info.get("secret"))


def snapshot(obj):
    """Column values of a model instance as JSON-ready data, secret columns masked."""
    mapper = sa.inspect(obj).mapper
    return {
        attr.key: (MASK if _secret(attr.columns[0]) and getattr(obj, attr.key) else _plain(getattr(obj, attr.key)))
        for attr in mapper.column_attrs
    }


def changes(obj):
    """(old, new) for the columns changed on a pending instance, secret columns masked."""
    old, new = {}, {}
    state = sa.inspect(obj)
    for attr in state.mapper.column_attrs:
        history = state.attrs[attr.key].history
        if not history.has_changes():
            continue
        before = history.deleted[0] if history.deleted else None
        after = history.added[0] if history.added else None
        if before == after:
            continue
        if _secret(attr.columns[0]):
            before, after = (MASK if before else None), (MASK if after else None)
        old[attr.key], new[attr.key] = _plain(before), _plain(after)
    return old, new


def record(action, entity, entity_id=None, old=None, new=None, actor=None):
    """Add an audit row to the session; the caller commits it with the change it describes."""
    if actor is None and has_request_context() and current_user.is_authenticated:
        actor = current_user
    row = AuditLog(
        actor_id=getattr(actor, "id", None),
        actor_email=getattr(actor, "email", None),
        action=action,
        entity=entity,
        entity_id=None if entity_id is None else str(entity_id),
        old_values=old,
        new_values=new,
    )
    if has_request_context():
        row.ip = request.remote_addr
        row.user_agent = (request.user_agent.string or "")[:500]
    db.session.add(row)
    return row
