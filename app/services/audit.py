"""The audit trail: one AuditLog row per change an admin makes, secrets masked.

Rows are added to the caller's session so they commit (or roll back) with the change itself.
Relationships count as changes: a many-to-one (a function's provider, a user's plan) is recorded by the
related row's id, and an owned collection (a function's fallback chain) as the list of its rows.
"""
from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import MANYTOONE
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


def _fk_key(mapper, rel):
    """The attribute name of the local foreign-key column behind a many-to-one relationship."""
    (column,) = rel.local_columns
    return mapper.get_property_by_column(column).key


def _committed(state, key):
    """An attribute's value as last loaded from the database (None for a row not saved yet)."""
    history = state.attrs[key].history
    if history.deleted:
        return history.deleted[0]
    return history.unchanged[0] if history.unchanged else None


def _related_id(state, rel, committed):
    """A many-to-one as the id it points at: as saved, or as it will be saved at the next flush.

    Until that flush the foreign-key column still holds the saved id, whatever the relationship says now.
    """
    fk = _fk_key(state.mapper, rel)
    if committed:
        return _committed(state, fk)
    if rel.key in state.unloaded:
        return getattr(state.obj(), fk)
    target = getattr(state.obj(), rel.key)
    return None if target is None else sa.inspect(target).mapper.primary_key_from_instance(target)[0]


def _owned(rel):
    """Collections whose rows are part of their parent (deleted with it), like a function's fallbacks."""
    return rel.uselist and rel.cascade.delete_orphan


def _row(obj, committed, parent_class):
    """An owned row's columns and many-to-ones (the link back to its parent left out), as saved or as now."""
    state = sa.inspect(obj)
    links = [r for r in state.mapper.relationships if r.direction is MANYTOONE and r.mapper.class_ is not parent_class]
    skip = {_fk_key(state.mapper, r) for r in state.mapper.relationships if r.direction is MANYTOONE}
    row = {}
    for attr in state.mapper.column_attrs:
        if attr.key in skip:
            continue
        value = _committed(state, attr.key) if committed else getattr(obj, attr.key)
        row[attr.key] = (MASK if value else None) if _secret(attr.columns[0]) else _plain(value)
    for rel in links:
        row[rel.key] = _related_id(state, rel, committed)
    return row


def relations(obj):
    """The owned collections of an instance as they are now, for a "create" row."""
    state = sa.inspect(obj)
    return {rel.key: [_row(child, False, state.mapper.class_) for child in getattr(obj, rel.key)]
            for rel in state.mapper.relationships if _owned(rel) and rel.key not in state.unloaded}


def changes(obj):
    """(old, new) for the columns and relationships changed on a pending instance, secret columns masked."""
    old, new = {}, {}
    state = sa.inspect(obj)
    for rel in state.mapper.relationships:
        if rel.key in state.unloaded:
            continue  # never loaded, so never changed through this instance
        if rel.direction is MANYTOONE:
            before, after = _related_id(state, rel, True), _related_id(state, rel, False)
        elif _owned(rel):
            history = state.attrs[rel.key].history
            parent = state.mapper.class_
            before = [_row(c, True, parent) for c in (*history.unchanged, *history.deleted)
                      if sa.inspect(c).persistent]
            after = [_row(c, False, parent) for c in getattr(obj, rel.key) if c not in db.session.deleted]
        else:
            continue
        if before != after:
            old[rel.key], new[rel.key] = before, after
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
