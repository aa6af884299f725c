"""What customers may see and buy: the one rule deciding whether a function is on the site."""
import sqlalchemy as sa

from app.extensions import db
from app.models import AIFunction, Plan, Provider


def _visible():
    # A function is offered only while it and its provider are both enabled.
    return (
        sa.select(AIFunction)
        .join(Provider, AIFunction.provider_id == Provider.id)
        .where(AIFunction.enabled.is_(True), Provider.enabled.is_(True))
    )


def visible_functions():
    return db.session.scalars(_visible().order_by(AIFunction.priority.desc(), AIFunction.name)).all()


def visible_function(key):
    return db.session.scalars(_visible().where(AIFunction.key == key)).first()


def public_plans():
    return db.session.scalars(
        sa.select(Plan).where(Plan.hidden.is_(False)).order_by(Plan.sort_order, Plan.price)
    ).all()
