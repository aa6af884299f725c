"""Money in and out: orders created before checkout, gateway events applied once against them (credits,
subscriptions, refunds), payments needing review, and manual payments.

Gateways (app/payments) talk to Stripe and PayPal and translate their events (services/payment_events.py);
every rule about what a payment changes lives here, and the site reaches the gateways only through here.
"""
import logging
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Order, Payment, User, WebhookEvent
from app.models.types import utcnow
from app.payments import gateway
from app.services import audit, catalog, coupons, credits, mail, referrals
from app.services import payment_events as events
from app.services.payment_events import GatewayError, as_int, from_minor, to_minor
from app.services.urls import absolute_url

log = logging.getLogger(__name__)

UNAVAILABLE = "Payments are unavailable right now. Please try again in a few minutes."


class CheckoutError(Exception):
    """Checkout could not start or finish; the message is for the customer."""


class NotForSale(CheckoutError):
    """This plan is not offered to this customer through this gateway (answer 404)."""


class UnknownGateway(Exception):
    """A webhook for a gateway we do not have (answer 404)."""


# --- buying ---


def checkout_options(plan):
    """The gateways a plan can be bought through: Stripe once its secret key is set (at the plan's Stripe price,
    or at our own price when it has none); PayPal (one-time Orders, so credit packs only) once its keys are set."""
    options = []
    if plan.price > 0 and gateway("stripe").configured():
        options.append("stripe")
    if plan.kind == "pack" and plan.price > 0 and gateway("paypal").configured():
        options.append("paypal")
    return options


def plan_for_credits(user, needed):
    """The cheapest plan this user can buy right now that brings at least `needed` credits, or None."""
    fitting = [plan for plan in catalog.plans_for(user) if plan.credits >= needed and checkout_options(plan)]
    return min(fitting, key=lambda plan: plan.price, default=None)


def _return_urls(order):
    if order.gateway == "paypal":
        return absolute_url("site.paypal_return", order_id=order.id), absolute_url("site.pricing")
    return absolute_url("site.account", paid=1), absolute_url("site.pricing")


def start_checkout(user, plan, gateway_key, coupon_code=None):
    """Write a pending order for `plan` (a percent-off code priced in), then create the gateway's checkout for it;
    returns the URL to send the buyer to. Raises NotForSale, or CheckoutError when the code does not apply or the
    gateway does not answer (the order is marked failed)."""
    if not catalog.plan_offered(user, plan) or gateway_key not in checkout_options(plan):
        raise NotForSale("This plan is not for sale here.")
    try:
        coupon = coupons.for_checkout(user, plan, coupon_code)
    except coupons.CouponError as exc:
        raise CheckoutError(str(exc)) from None
    amount = coupons.discounted(plan.price, coupon.percent_off) if coupon else plan.price
    if amount <= 0:
        raise CheckoutError("This code makes the plan free: ask support to add it to your account instead.")
    order = Order(user_id=user.id, plan_id=plan.id, plan_name=plan.name, plan_kind=plan.kind, gateway=gateway_key,
                  amount=amount, currency=plan.currency.upper(), credits=plan.credits, status="pending",
                  coupon_id=coupon.id if coupon else None)
    db.session.add(order)
    db.session.commit()  # the order exists before the gateway hears of it
    try:
        reference, url = gateway(gateway_key).start(order, user, *_return_urls(order))
    except GatewayError as exc:
        db.session.rollback()
        log.warning("checkout for order %s (%s) failed: %s", order.id, gateway_key, exc)
        db.session.execute(sa.update(Order).where(Order.id == order.id).values(status="failed", error=str(exc)[:500]))
        db.session.commit()
        raise CheckoutError(UNAVAILABLE) from None
    order.gateway_reference = reference
    db.session.commit()  # with the Stripe customer id created for this user, if any
    return url


def finish_paypal_return(user, order_id, token):
    """The buyer is back from PayPal: capture their approved order and apply it. Returns "applied",
    "duplicate", "review" or "pending" (PayPal has not finished: its webhook will tell)."""
    order = db.session.get(Order, order_id)
    if (order is None or order.user_id != user.id or order.gateway != "paypal" or not token
            or token != order.gateway_reference):
        raise NotForSale("No such order.")
    if order.status != "pending":
        return "duplicate"  # a reload, or the webhook came first
    try:
        event = gateway("paypal").capture(order)
    except GatewayError as exc:
        db.session.rollback()
        log.warning("PayPal capture for order %s failed: %s", order.id, exc)
        raise CheckoutError("PayPal did not complete the payment. Nothing was charged; please try again.") from None
    if event is None:
        return "duplicate"  # PayPal says it is captured already: the other request or the webhook applies it
    if event.status == "PENDING":
        db.session.rollback()
        return "pending"
    return apply(event)


def billing_portal_url(user, return_url):
    """Stripe's customer portal (cards, invoices, cancelling a subscription). Raises CheckoutError."""
    try:
        url = gateway("stripe").portal_url(user, return_url)
    except GatewayError as exc:
        db.session.rollback()
        log.warning("billing portal for user %s failed: %s", user.id, exc)
        raise CheckoutError("The billing portal is unavailable right now. Please try again later.") from None
    db.session.commit()  # keeps the Stripe customer id created for this user
    return url


def total_spend(user_ids):
    """{user id: [(currency, minor units)]}: what each user paid in succeeded payments, per currency."""
    if not user_ids:
        return {}
    rows = db.session.execute(
        sa.select(Payment.user_id, Payment.currency, sa.func.sum(Payment.amount))
        .where(Payment.user_id.in_(list(user_ids)), Payment.status == "succeeded")
        .group_by(Payment.user_id, Payment.currency).order_by(Payment.currency))
    spend = {}
    for user_id, currency, amount in rows:
        spend.setdefault(user_id, []).append((currency, int(amount)))
    return spend


def dashboard_links(user):
    """Links to this customer in the gateways' dashboards: [(gateway, URL)]."""
    url = gateway("stripe").customer_url(user.stripe_customer_id)
    return [("Stripe", url)] if url else []


def payment_dashboard_url(payment):
    """The payment's page in its gateway's dashboard, or None (manual payments, unknown ids)."""
    if payment.provider == "manual":
        return None
    return gateway(payment.provider).payment_url(payment.external_id)


# --- gateway events ---


def receive_webhook(gateway_key, body, headers):
    """Verify a webhook with its gateway and apply it once: (event or None, outcome).
    Raises UnknownGateway, or WebhookRejected for a delivery we do not trust."""
    try:
        source = gateway(gateway_key)
    except LookupError:
        raise UnknownGateway(gateway_key) from None
    event = source.parse_webhook(body, headers)
    if event is None:
        return None, "ignored"
    return event, apply(event)


def apply(event):
    """Apply a verified event exactly once. Returns "applied", "review", "duplicate" or "ignored"."""
    try:
        with db.session.begin_nested():
            db.session.add(WebhookEvent(provider=event.provider, event_id=event.event_id[:255],
                                        event_type=event.source_type[:64]))
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


def _order(event):
    """The order an event names: found by our order id only, never by gateway-specific columns."""
    order_id = as_int(event.order_ref)
    return db.session.get(Order, order_id) if order_id and 0 < order_id < 2**31 else None


def _payment(provider, *ids):
    ids = [i for i in ids if i]
    if not ids:
        return None
    return db.session.scalars(sa.select(Payment).where(Payment.provider == provider, Payment.external_id.in_(ids))
                              ).first()


def _money(amount, currency):
    return f"{amount if amount is not None else 'an unreadable amount'} {str(currency or '(no currency)')[:8]}"


def _problem(event, order, renewal=False):
    """Why this event may not credit this order, or None when it matches what we sold."""
    if order is None:
        return f"names no order of ours (reference {str(event.order_ref)[:40]!r})"
    if order.gateway != event.provider:
        return f"order #{order.id} was placed with {order.gateway}, not {event.provider}"
    if event.checkout_id and order.gateway_reference and event.checkout_id != order.gateway_reference:
        return f"belongs to checkout {str(event.checkout_id)[:64]!r}, not the one created for order #{order.id}"
    if renewal and order.plan_kind == "pack":
        return f"order #{order.id} is a one-time pack, not a subscription"
    if order.status == "failed":
        return f"order #{order.id} never reached the gateway"
    if not event.paid:
        return f"the gateway reports it not paid (status {str(event.status)[:32]!r})"
    sold = from_minor(order.amount)
    if event.currency != order.currency or event.amount != sold:
        what = "renewed at" if renewal else "paid"
        return f"{what} {_money(event.amount, event.currency)}; the order is {_money(sold, order.currency)}"
    if order.plan is not None and not catalog.plan_offered(order.user, order.plan):
        return f"plan {order.plan.name!r} is hidden and not assigned to this user"
    return None


def _review(event, order, reason, payment=None):
    """Record money we will not credit on our own: a payment needing review, with the reason, for staff."""
    if payment is None:
        payment = Payment(provider=event.provider, external_id=(event.external_id or "")[:255] or None,
                          event_id=event.event_id[:255])
        db.session.add(payment)
    payment.status, payment.review_reason, payment.credits = "review", reason[:500], 0
    payment.amount = to_minor(event.amount) or 0
    payment.currency = (event.currency or (order.currency if order else "USD"))[:3]
    if order is not None:
        payment.order_id, payment.user_id = order.id, order.user_id
        payment.plan_id, payment.plan_name = order.plan_id, order.plan_name
    log.warning("%s event %s needs review: %s", event.provider, event.event_id, reason)
    return "review"


def _claim(order):
    """pending → paid, once: of two deliveries racing (capture return and webhook), exactly one wins."""
    won = db.session.execute(
        sa.update(Order).where(Order.id == order.id, Order.status == "pending")
        .values(status="paid", paid_at=utcnow()).returning(Order.id)
    ).scalar()
    return won is not None


def _order_paid(event):
    """A checkout we created was paid: credit the order's credits (packs) or start its subscription."""
    known = _payment(event.provider, event.external_id)
    if known is not None and known.status in ("succeeded", "refunded"):
        return "duplicate"  # the capture return and the webhook name the same capture
    order = _order(event)
    problem = _problem(event, order)
    if problem:
        return _review(event, order, problem, known)
    if not _claim(order):
        # The other delivery won; it committed before our UPDATE returned, so its payment is visible now.
        known = _payment(event.provider, event.external_id)
        if known is not None and known.status in ("succeeded", "refunded"):
            return "duplicate"
        return _review(event, order, f"order #{order.id} was already paid", known)
    user = db.session.get(User, order.user_id)
    coupons.count_paid_order(order, user)
    referrals.on_paid_order(user, order)
    if order.plan_kind != "pack":
        # Credits come with each paid invoice (PAYMENT_SUCCEEDED); the checkout starts the subscription.
        user.plan_id = order.plan_id
        user.subscription_id = event.subscription_id or user.subscription_id
        if not user.subscription_event_at or event.created >= user.subscription_event_at:
            user.subscription_event_at, user.subscription_status = event.created, "active"
        return "applied"
    payment = known or Payment(provider=event.provider, external_id=event.external_id, event_id=event.event_id)
    payment.status, payment.review_reason = "succeeded", None
    _sold(payment, order)
    db.session.add(payment)
    db.session.flush()
    grant_payment(payment)
    _receipt(payment)
    return "applied"


def _sold(payment, order):
    """A payment that matched its order carries the order's terms."""
    payment.user_id, payment.order_id = order.user_id, order.id
    payment.plan_id, payment.plan_name = order.plan_id, order.plan_name
    payment.amount, payment.currency, payment.credits = order.amount, order.currency, order.credits


def _succeeded(event):
    """A subscription invoice was paid: credit one period at the price and currency the order sold."""
    payment = _payment(event.provider, event.external_id)
    if payment is not None and payment.status == "refunded":
        return "ignored"  # a refund arrived first: never credit a refunded payment
    if payment is not None and payment.status == "succeeded":
        return "duplicate"  # invoice.paid and invoice.payment_succeeded both name it
    order = _order(event)
    problem = _problem(event, order, renewal=True)
    if problem:
        return _review(event, order, problem, payment)
    if payment is None:
        payment = Payment(provider=event.provider, external_id=event.external_id, event_id=event.event_id)
        db.session.add(payment)
    payment.status, payment.review_reason = "succeeded", None
    _sold(payment, order)
    db.session.flush()
    grant_payment(payment)
    _receipt(payment)
    return "applied"


def _failed(event):
    order = _order(event)
    if order is None:
        log.error("%s event %s names no order of ours", event.provider, event.event_id)
        return "ignored"
    payment = _payment(event.provider, event.external_id)
    if payment is None:
        payment = Payment(provider=event.provider, external_id=event.external_id, user_id=order.user_id,
                          order_id=order.id, plan_id=order.plan_id, plan_name=order.plan_name,
                          amount=to_minor(event.amount) or 0, currency=(event.currency or order.currency)[:3],
                          event_id=event.event_id)
        db.session.add(payment)
    if payment.status == "pending":
        payment.status = "failed"
    user = db.session.get(User, order.user_id)
    if event.subscription_id and user.subscription_id == event.subscription_id:
        user.subscription_status = "past_due"
    if payment.status == "failed":
        mail.queue(user, "payment_failed", payment_id=payment.id)
    return "applied"


def _subscription(event, ended=False):
    order = _order(event)
    if order is None:
        log.error("%s event %s names no order of ours", event.provider, event.event_id)
        return "ignored"
    user = db.session.get(User, order.user_id)
    if user.subscription_event_at and event.created < user.subscription_event_at:
        return "ignored"  # out of order: a newer state is already applied
    user.subscription_event_at = event.created
    user.subscription_id = event.subscription_id or user.subscription_id
    user.subscription_status = event.status
    if ended:
        user.plan_id = None
        user.subscription_period_end = None
        return "applied"
    if order.status == "paid":  # the plan's perks start once its checkout was paid as sold
        user.plan_id = order.plan_id
    if event.period_end:
        user.subscription_period_end = datetime.fromtimestamp(event.period_end, timezone.utc)
    return "applied"


def _refunded(event):
    payment = _payment(event.provider, event.external_id, *event.related_ids)
    if payment is None:
        log.error("%s refund event %s matches no payment", event.provider, event.event_id)
        return "ignored"
    if payment.status not in ("succeeded", "refunded"):
        return "ignored"  # nothing was credited for it, so nothing to take back
    refunded = to_minor(event.amount)
    full = refunded is None or not payment.amount or refunded >= payment.amount
    share = payment.credits if full else payment.credits * refunded // payment.amount
    payment.status = "refunded" if full else payment.status
    # Refunds may come in parts: each takes back what the refunded total now covers, minus earlier parts.
    to_take = max(share - payment.refunded_credits, 0)
    payment.refunded_credits += to_take
    if to_take:
        credits.take_back(payment.user_id, to_take, payment_id=payment.id, idempotency_key=f"refund:{event.event_id}",
                          reason=f"Refund of {payment.provider} payment #{payment.id}")
    user = db.session.get(User, payment.user_id) if payment.user_id else None
    if user is not None:
        mail.queue(user, "refund", payment_id=payment.id, amount=str(event.amount or from_minor(payment.amount)),
                   credits=to_take)
    return "applied"


HANDLERS = {
    events.ORDER_PAID: _order_paid,
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
    _receipt(payment)
    audit.record("create", "Payment", payment.id, new=audit.snapshot(payment), actor=actor)
    db.session.commit()
    return payment


# --- what the customer is emailed ---


def _receipt(payment):
    user = db.session.get(User, payment.user_id) if payment.user_id else None
    if user is not None:
        mail.queue(user, "payment_receipt", payment_id=payment.id)


@mail.message("payment_receipt")
@mail.message("payment_failed")
@mail.message("refund")
def _payment_context(user, params):
    payment = db.session.get(Payment, params.get("payment_id"))
    if payment is None or user is None:
        return None
    return {"user": user, "payment": payment, "amount": f"{from_minor(payment.amount)} {payment.currency}",
            "plan": payment.plan_name or "Credits", "account_url": absolute_url("site.account"),
            "pricing_url": absolute_url("site.pricing"), "subscription_end": user.subscription_period_end,
            **{k: v for k, v in params.items() if k != "payment_id"}}

