"""Money in and out: applying payment events once (credits, subscriptions, refunds) and manual payments.

Gateways (app/payments) verify and translate webhooks; every rule about what a payment changes lives here.
"""
import logging
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Payment, Plan, User, WebhookEvent
from app.payments import base as events
from app.services import audit, credits

log = logging.getLogger(__name__)


def _user(event):
    if event.user_id:
        user = db.session.get(User, event.user_id)
        if user is not None:
            return user
    if event.customer_id:
        return db.session.scalars(sa.select(User).where(User.stripe_customer_id == event.customer_id)).first()
    return None


def _plan(event):
    if event.plan_id:
        plan = db.session.get(Plan, event.plan_id)
        if plan is not None:
            return plan
    if event.price_id:
        return db.session.scalars(sa.select(Plan).where(Plan.stripe_price_id == event.price_id)).first()
    return None


def _payment(provider, *ids):
    ids = [i for i in ids if i]
    if not ids:
        return None
    return db.session.scalars(sa.select(Payment).where(Payment.provider == provider, Payment.external_id.in_(ids))
                              ).first()


def apply(event):
    """Apply a verified event exactly once. Returns "applied", "duplicate" or "ignored"."""
    try:
        with db.session.begin_nested():
            db.session.add(WebhookEvent(provider=event.provider, event_id=event.event_id, event_type=event.source_type))
            db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return "duplicate"
    handler = HANDLERS.get(event.kind)
    outcome = handler(event) if handler else "ignored"
    db.session.commit()
    return outcome


def grant_payment(payment, actor=None):
    """Credit a succeeded payment's credits once (the payment id is the idempotency key)."""
    if payment.credits:
        credits.grant(payment.user_id, payment.credits, kind="purchase", payment_id=payment.id,
                      reason=f"{payment.plan_name or 'Credits'} ({payment.provider} payment #{payment.id})",
                      idempotency_key=f"payment:{payment.id}", actor_id=getattr(actor, "id", None))


def _succeeded(event):
    user, plan = _user(event), _plan(event)
    if user is None:
        log.error("%s event %s names no known user", event.provider, event.event_id)
        return "ignored"
    payment = _payment(event.provider, event.external_id)
    if payment is None:
        payment = Payment(provider=event.provider, external_id=event.external_id, user_id=user.id, event_id=event.event_id)
        db.session.add(payment)
    if payment.status == "refunded":
        return "ignored"  # a refund arrived first: never credit a refunded payment
    payment.status, payment.user_id = "succeeded", user.id
    payment.amount = event.amount if event.amount is not None else payment.amount or 0
    payment.currency = (event.currency or payment.currency or "usd").upper()
    if plan is not None:
        payment.plan_id, payment.plan_name, payment.credits = plan.id, plan.name, plan.credits
    db.session.flush()
    grant_payment(payment)
    return "applied"


def _failed(event):
    user = _user(event)
    if user is None:
        return "ignored"
    payment = _payment(event.provider, event.external_id)
    if payment is None:
        payment = Payment(provider=event.provider, external_id=event.external_id, user_id=user.id,
                          amount=event.amount or 0, currency=(event.currency or "usd").upper(), event_id=event.event_id)
        db.session.add(payment)
    if payment.status == "pending":
        payment.status = "failed"
    if event.subscription_id and user.subscription_id == event.subscription_id:
        user.subscription_status = "past_due"
    return "applied"


def _subscription(event, ended=False):
    user = _user(event)
    if user is None:
        return "ignored"
    if user.subscription_event_at and event.created < user.subscription_event_at:
        return "ignored"  # out of order: a newer state is already applied
    user.subscription_event_at = event.created
    user.subscription_id = event.subscription_id or user.subscription_id
    user.subscription_status = event.status
    if ended:
        user.plan_id = None
        user.subscription_period_end = None
        return "applied"
    plan = _plan(event)
    if plan is not None:
        user.plan_id = plan.id
    if event.period_end:
        user.subscription_period_end = datetime.fromtimestamp(event.period_end, timezone.utc)
    return "applied"


def _refunded(event):
    payment = _payment(event.provider, event.external_id, *event.related_ids)
    if payment is None:
        log.error("%s refund event %s matches no payment", event.provider, event.event_id)
        return "ignored"
    full = event.amount is None or not payment.amount or event.amount >= payment.amount
    share = payment.credits if full else payment.credits * event.amount // payment.amount
    payment.status = "refunded" if full else payment.status
    # Refunds may come in parts: each takes back what the refunded total now covers, minus earlier parts.
    to_take = max(share - payment.refunded_credits, 0)
    payment.refunded_credits += to_take
    if to_take:
        credits.take_back(payment.user_id, to_take, payment_id=payment.id, idempotency_key=f"refund:{event.event_id}",
                          reason=f"Refund of {payment.provider} payment #{payment.id}")
    return "applied"


HANDLERS = {
    events.PAYMENT_SUCCEEDED: _succeeded,
    events.PAYMENT_FAILED: _failed,
    events.SUBSCRIPTION_CHANGED: _subscription,
    events.SUBSCRIPTION_ENDED: lambda event: _subscription(event, ended=True),
    events.REFUNDED: _refunded,
}


def record_manual(user, plan, amount, currency, credits_granted, note, actor):
    """A payment received outside the gateways (bank transfer, invoice): recorded and credited at once."""
    payment = Payment(user_id=user.id, provider="manual", status="succeeded", amount=amount, currency=currency.upper(),
                      credits=credits_granted, plan_id=plan.id if plan else None, plan_name=plan.name if plan else None,
                      note=note, recorded_by_id=actor.id)
    db.session.add(payment)
    db.session.flush()
    grant_payment(payment, actor)
    audit.record("create", "Payment", payment.id, new=audit.snapshot(payment), actor=actor)
    return payment
