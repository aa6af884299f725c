"""Stripe: signed webhooks (stripe.Webhook.construct_event on the raw body), Checkout and the billing portal.

Keys come from settings (payments group): stripe_secret_key, stripe_webhook_secret, stripe_api_base.
"""
import uuid

import stripe

from app.payments.base import (PAYMENT_FAILED, PAYMENT_SUCCEEDED, REFUNDED, SUBSCRIPTION_CHANGED,
                               SUBSCRIPTION_ENDED, PaymentEvent, PaymentGateway, WebhookRejected, as_int,
                               register)
from app.services import settings

ENDED = {"canceled", "incomplete_expired", "unpaid"}


def _client():
    key = settings.get("payments.stripe_secret_key")
    if not key:
        raise RuntimeError("Stripe is not configured: set the Stripe secret key in Settings → Payments.")
    return stripe.StripeClient(key, base_addresses={"api": settings.get("payments.stripe_api_base")})


def _first_price(obj):
    """The price id of an invoice's or subscription's first line (shapes differ across API versions)."""
    lines = (obj.get("lines") or obj.get("items") or {}).get("data") or [{}]
    line = lines[0]
    price = line.get("price") or ((line.get("pricing") or {}).get("price_details") or {}).get("price")
    return price.get("id") if isinstance(price, dict) else price


def _period_end(subscription):
    items = (subscription.get("items") or {}).get("data") or [{}]
    return subscription.get("current_period_end") or items[0].get("current_period_end")


@register
class StripeGateway(PaymentGateway):
    key = "stripe"

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
                            created=as_int(event.get("created")) or 0, customer_id=obj.get("customer"))
        meta = obj.get("metadata") or {}
        base.user_id, base.plan_id = as_int(meta.get("user_id")), as_int(meta.get("plan_id"))
        kind = event["type"]
        if kind == "checkout.session.completed":
            if obj.get("mode") == "subscription":
                base.kind, base.subscription_id, base.status = SUBSCRIPTION_CHANGED, obj.get("subscription"), "active"
            elif obj.get("payment_status") == "paid":
                base.kind, base.external_id = PAYMENT_SUCCEEDED, obj.get("payment_intent") or obj.get("id")
                base.amount, base.currency = obj.get("amount_total"), obj.get("currency")
        elif kind in ("invoice.payment_succeeded", "invoice.paid", "invoice.payment_failed"):
            sub_meta = ((obj.get("subscription_details") or {}).get("metadata")) or {}
            base.user_id = base.user_id or as_int(sub_meta.get("user_id"))
            base.plan_id = base.plan_id or as_int(sub_meta.get("plan_id"))
            base.kind = PAYMENT_FAILED if kind == "invoice.payment_failed" else PAYMENT_SUCCEEDED
            base.external_id, base.price_id = obj.get("id"), _first_price(obj)
            base.amount = obj.get("amount_due" if base.kind == PAYMENT_FAILED else "amount_paid")
            base.currency, base.subscription_id = obj.get("currency"), obj.get("subscription")
            base.related_ids = [obj.get("payment_intent"), obj.get("charge")]
        elif kind in ("customer.subscription.updated", "customer.subscription.created"):
            base.kind, base.subscription_id, base.status = SUBSCRIPTION_CHANGED, obj.get("id"), obj.get("status")
            base.price_id, base.period_end = _first_price(obj), as_int(_period_end(obj))
            if base.status in ENDED:
                base.kind = SUBSCRIPTION_ENDED
        elif kind == "customer.subscription.deleted":
            base.kind, base.subscription_id, base.status = SUBSCRIPTION_ENDED, obj.get("id"), "canceled"
        elif kind == "charge.refunded":
            base.kind, base.external_id = REFUNDED, obj.get("payment_intent") or obj.get("id")
            base.related_ids = [obj.get("invoice"), obj.get("id")]
            base.amount, base.currency = obj.get("amount_refunded"), obj.get("currency")
        return base

    def ensure_customer(self, user):
        """The user's Stripe customer id, created once: every later event names the user through it."""
        if not user.stripe_customer_id:
            customer = _client().v1.customers.create(
                params={"email": user.email, "metadata": {"user_id": str(user.id)}},
                options={"idempotency_key": f"customer-{user.id}"})
            user.stripe_customer_id = customer.id
        return user.stripe_customer_id

    def checkout_url(self, user, plan, success_url, cancel_url):
        subscription = plan.kind != "pack"
        metadata = {"user_id": str(user.id), "plan_id": str(plan.id)}
        params = {
            "mode": "subscription" if subscription else "payment",
            "customer": self.ensure_customer(user),
            "client_reference_id": str(user.id),
            "line_items": [{"price": plan.stripe_price_id, "quantity": 1}],
            "metadata": metadata,
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        if subscription:
            params["subscription_data"] = {"metadata": metadata}
        else:
            params["payment_intent_data"] = {"metadata": metadata}
        session = _client().v1.checkout.sessions.create(params=params,
                                                         options={"idempotency_key": str(uuid.uuid4())})
        return session.url

    def portal_url(self, user, return_url):
        session = _client().v1.billing_portal.sessions.create(
            params={"customer": self.ensure_customer(user), "return_url": return_url})
        return session.url
