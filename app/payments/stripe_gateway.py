"""Stripe: Checkout Sessions for our orders, signed webhooks (stripe.Webhook.construct_event on the raw body)
and the billing portal.

Keys come from settings (payments group): stripe_secret_key, stripe_webhook_secret; the API host from the app
config STRIPE_API_BASE (environment only). Every object we create names our order in client_reference_id and
metadata.order_id; events find the order through it.
"""
import uuid
from urllib.parse import quote

import stripe
from flask import current_app

from app.payments.base import PaymentGateway, register
from app.services import settings
from app.services.payment_events import (ORDER_PAID, PAYMENT_FAILED, PAYMENT_SUCCEEDED, REFUNDED,
                                         SUBSCRIPTION_CHANGED, SUBSCRIPTION_ENDED, GatewayError, PaymentEvent,
                                         WebhookRejected, as_int, from_minor)

ENDED = {"canceled", "incomplete_expired", "unpaid"}
DASHBOARD = "https://dashboard.stripe.com/"


def _client():
    key = settings.get("payments.stripe_secret_key")
    if not key:
        raise GatewayError("Stripe is not configured: set the Stripe secret key in Settings → Payments.")
    return stripe.StripeClient(key, base_addresses={"api": current_app.config["STRIPE_API_BASE"]})


def _period_end(subscription):
    items = (subscription.get("items") or {}).get("data") or [{}]
    return subscription.get("current_period_end") or items[0].get("current_period_end")


def _invoice_order(invoice):
    """Our order id on an invoice: its subscription's metadata (where it sits differs across API versions)."""
    for details in (invoice.get("subscription_details"),
                    (invoice.get("parent") or {}).get("subscription_details")):
        ref = ((details or {}).get("metadata") or {}).get("order_id")
        if ref:
            return ref
    return (invoice.get("metadata") or {}).get("order_id")


def _currency(obj):
    return (obj.get("currency") or "").upper() or None


def _dashboard(path):
    # Test-mode objects live under /test/ in the dashboard; the key in use says which mode we are in.
    test = (settings.get("payments.stripe_secret_key") or "").startswith(("sk_test_", "rk_test_"))
    return f"{DASHBOARD}{'test/' if test else ''}{path}"


@register
class StripeGateway(PaymentGateway):
    key = "stripe"

    def configured(self):
        return bool(settings.get("payments.stripe_secret_key"))

    def customer_url(self, customer_id):
        return _dashboard(f"customers/{quote(customer_id, safe='')}") if customer_id else None

    def payment_url(self, external_id):
        # A payment intent (pi_…) or a charge; invoices (in_…) have their own page.
        if not external_id:
            return None
        section = "invoices" if external_id.startswith("in_") else "payments"
        return _dashboard(f"{section}/{quote(external_id, safe='')}")

    def parse_webhook(self, body, headers):
        secret = settings.get("payments.stripe_webhook_secret")
        if not secret:
            raise WebhookRejected("Stripe webhooks are not configured (no signing secret).")
        try:
            verified = stripe.Webhook.construct_event(body, headers.get("Stripe-Signature"), secret, tolerance=300)
        except (ValueError, stripe.SignatureVerificationError) as exc:
            raise WebhookRejected(f"Stripe signature check failed: {exc}") from None
        event = verified.to_dict()  # plain dicts all the way down: shapes differ across API versions
        obj = event["data"]["object"]
        base = PaymentEvent(provider=self.key, event_id=event["id"], source_type=event["type"],
                            created=as_int(event.get("created")) or 0)
        kind = event["type"]
        # Delayed payment methods (bank debits) complete the session unpaid and report the money later.
        if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
            base.kind, base.checkout_id = ORDER_PAID, obj.get("id")
            base.order_ref = obj.get("client_reference_id") or (obj.get("metadata") or {}).get("order_id")
            base.paid, base.status = obj.get("payment_status") == "paid", obj.get("payment_status")
            base.amount, base.currency = from_minor(as_int(obj.get("amount_total"))), _currency(obj)
            base.subscription_id = obj.get("subscription")
            base.external_id = obj.get("payment_intent") or obj.get("id")
        elif kind in ("invoice.payment_succeeded", "invoice.paid", "invoice.payment_failed"):
            failed = kind == "invoice.payment_failed"
            base.kind = PAYMENT_FAILED if failed else PAYMENT_SUCCEEDED
            base.order_ref, base.external_id = _invoice_order(obj), obj.get("id")
            base.amount = from_minor(as_int(obj.get("amount_due" if failed else "amount_paid")))
            base.currency, base.subscription_id = _currency(obj), obj.get("subscription")
            base.paid, base.status = not failed, obj.get("status")
            base.related_ids = [obj.get("payment_intent"), obj.get("charge")]
        elif kind in ("customer.subscription.updated", "customer.subscription.created"):
            base.kind, base.subscription_id, base.status = SUBSCRIPTION_CHANGED, obj.get("id"), obj.get("status")
            base.order_ref = (obj.get("metadata") or {}).get("order_id")
            base.period_end = as_int(_period_end(obj))
            if base.status in ENDED:
                base.kind = SUBSCRIPTION_ENDED
        elif kind == "customer.subscription.deleted":
            base.kind, base.subscription_id, base.status = SUBSCRIPTION_ENDED, obj.get("id"), "canceled"
            base.order_ref = (obj.get("metadata") or {}).get("order_id")
        elif kind == "charge.refunded":
            base.kind, base.external_id = REFUNDED, obj.get("payment_intent") or obj.get("id")
            base.related_ids = [obj.get("invoice"), obj.get("id")]
            base.amount, base.currency = from_minor(as_int(obj.get("amount_refunded"))), _currency(obj)
        return base

    def ensure_customer(self, user):
        """The user's Stripe customer id, created once, so the billing portal finds their subscriptions."""
        if not user.stripe_customer_id:
            customer = _client().v1.customers.create(
                params={"email": user.email, "metadata": {"user_id": str(user.id)}},
                options={"idempotency_key": f"customer-{user.id}"})
            user.stripe_customer_id = customer.id
        return user.stripe_customer_id

    def _coupon(self, coupon):
        """Stripe's copy of our percent-off coupon, created once and kept on ours (the service commits it); it
        prices every period the same, so subscription renewals match the order's amount."""
        if not coupon.stripe_coupon_id:
            created = _client().v1.coupons.create(
                params={"percent_off": coupon.percent_off, "duration": "forever", "name": coupon.code[:40],
                        "metadata": {"coupon_id": str(coupon.id)}},
                options={"idempotency_key": f"neurapix-coupon-{coupon.id}-{coupon.percent_off}"})
            coupon.stripe_coupon_id = created.id
        return coupon.stripe_coupon_id

    def start(self, order, user, return_url, cancel_url):
        subscription = order.plan_kind != "pack"
        metadata = {"order_id": str(order.id)}
        params = {
            "mode": "subscription" if subscription else "payment",
            "client_reference_id": str(order.id),
            "line_items": [_line_item(order)],
            "metadata": metadata,
            "success_url": return_url,
            "cancel_url": cancel_url,
        }
        # Renewal invoices and refunds name the order through the subscription's or payment's metadata.
        if subscription:
            params["subscription_data"] = {"metadata": metadata}
        else:
            params["payment_intent_data"] = {"metadata": metadata}
        try:
            if order.coupon is not None:
                params["discounts"] = [{"coupon": self._coupon(order.coupon)}]
            params["customer"] = self.ensure_customer(user)
            session = _client().v1.checkout.sessions.create(params=params,
                                                             options={"idempotency_key": str(uuid.uuid4())})
        except stripe.StripeError as exc:
            raise GatewayError(f"Stripe refused the checkout: {exc.__class__.__name__}: {exc.user_message}") from None
        return session.id, session.url

    def portal_url(self, user, return_url):
        try:
            session = _client().v1.billing_portal.sessions.create(
                params={"customer": self.ensure_customer(user), "return_url": return_url})
        except stripe.StripeError as exc:
            raise GatewayError(f"Stripe refused the portal: {exc.__class__.__name__}: {exc.user_message}") from None
        return session.url


def _line_item(order):
    """The plan's Stripe price when it has one; otherwise the order's own amount, so every plan can be sold."""
    if order.plan is not None and order.plan.stripe_price_id:
        return {"price": order.plan.stripe_price_id, "quantity": 1}
    # With a coupon, Stripe takes the discount off the list price (order.amount is already discounted).
    unit_amount = order.plan.price if order.coupon_id else order.amount
    price = {"currency": order.currency.lower(), "unit_amount": unit_amount, "product_data": {"name": order.plan_name}}
    if order.plan_kind != "pack":
        price["recurring"] = {"interval": "year" if order.plan_kind == "yearly" else "month"}
    return {"price_data": price, "quantity": 1}
