"""Builds a valid row of any model from its columns, so generic tests cover models added later."""
import itertools
from datetime import datetime, timezone

import sqlalchemy as sa

from app.extensions import db

_counter = itertools.count(1)
# Columns whose form offers fixed choices that a generic string would not match.
CHOICES = {("providers", "key"): "local", ("orders", "gateway"): "stripe", ("coupons", "kind"): "credits",
           ("prompts", "category"): "general", ("alerts", "kind"): "queue_wait"}
# Values a row needs to pass its model's rules although the column has a default (a credits code gives credits).
VALID = {"coupons": {"credits": 5}}
# Nullable columns a generic row still fills: a user without an email is only legal for a client app's user.
FILLED = {("users", "email")}


def _value(column):
    if (column.table.name, column.name) in CHOICES:
        return CHOICES[(column.table.name, column.name)]
    kind = column.type
    n = next(_counter)
    if isinstance(kind, sa.Boolean):
        return False
    if isinstance(kind, sa.Integer):
        return 1
    if isinstance(kind, sa.DateTime):
        return datetime.now(timezone.utc)
    if isinstance(kind, sa.Date):
        return datetime.now(timezone.utc).date()
    if isinstance(kind, sa.JSON):
        return {}
    if isinstance(kind, sa.String):
        text = f"{column.name}-{n}@example.com" if column.name == "email" else f"{column.name}-{n}"
        return text[: kind.length] if kind.length else text
    raise TypeError(f"no test value for {column.table.name}.{column.name} of type {kind!r}")


def make_row(model):
    """Insert and return a row with every required column filled (parents created as needed)."""
    values = {}
    for attr in sa.inspect(model).column_attrs:
        column = attr.columns[0]
        if column.primary_key and column.autoincrement is not False and isinstance(column.type, sa.Integer):
            continue
        if column.foreign_keys and column.nullable and next(iter(column.foreign_keys)).column.table is column.table:
            continue  # an optional link to a row of the same table (who referred a user) would never end
        if column.foreign_keys:
            # Parents are filled even when optional: forms usually require them (a function's provider).
            parent = next(iter(column.foreign_keys)).column.table
            parent_model = next(m.class_ for m in db.Model.registry.mappers if m.local_table is parent)
            values[attr.key] = make_row(parent_model).id
        elif (column.table.name, column.name) in FILLED:
            values[attr.key] = _value(column)
        elif column.nullable or column.default is not None or column.server_default is not None:
            continue
        else:
            values[attr.key] = _value(column)
    values.update(VALID.get(model.__tablename__, {}))
    row = model(**values)
    db.session.add(row)
    db.session.commit()
    return row
