"""PayPal: webhooks verified by PayPal's verify-webhook-signature API (OAuth2 client credentials).

Credentials come from settings (payments group): paypal_client_id, paypal_client_secret, paypal_webhook_id,
and paypal_mode (or an explicit paypal_api_base). Captures name the buyer in custom_id as "<user id>:<plan id>".
"""
import json

import requests

from app.payments.base import (PAYMENT_SUCCEEDED, REFUNDED, PaymentEvent, PaymentGateway, WebhookRejected,
                               as_int, register)
from app.services import settings

TIMEOUT = 10
API_BASES = {"sandbox": "https://api-m.sandbox.paypal.com", "live": "https://api-m.paypal.com"}
HEADERS = {"auth_algo": "PAYPAL-AUTH-ALGO", "cert_url": "PAYPAL-CERT-URL", "transmission_id": "PAYPAL-TRANSMISSION-ID",
           "transmission_sig": "PAYPAL-TRANSMISSION-SIG", "transmission_time": "PAYPAL-TRANSMISSION-TIME"}


def _minor(amount):
    """PayPal amounts are decimal strings ("9.99"); we keep integer minor units."""
    try:
        return round(float((amount or {}).get("value")) * 100)
    except (TypeError, ValueError):
        return None


@register
class PayPalGateway(PaymentGateway):
    key = "paypal"

    def _verify(self, event, headers):
        base = (settings.get("payments.paypal_api_base") or API_BASES[settings.get("payments.paypal_mode")]).rstrip("/")
        client_id, secret = settings.get("payments.paypal_client_id"), settings.get("payments.paypal_client_secret")
        webhook_id = settings.get("payments.paypal_webhook_id")
        if not (client_id and secret and webhook_id):
            raise WebhookRejected("PayPal webhooks are not configured (client id, secret and webhook id).")
        try:
            token = requests.post(f"{base}/v1/oauth2/token", auth=(client_id, secret), timeout=TIMEOUT,
                                  data={"grant_type": "client_credentials"})
            token.raise_for_status()
            body = {name: headers.get(header) for name, header in HEADERS.items()}
            body.update(webhook_id=webhook_id, webhook_event=event)
            check = requests.post(f"{base}/v1/notifications/verify-webhook-signature", json=body, timeout=TIMEOUT,
                                  headers={"Authorization": f"Bearer {token.json()['access_token']}"})
            check.raise_for_status()
            status = check.json().get("verification_status")
        except (requests.RequestException, ValueError, KeyError) as exc:
            # Not verified is not trusted: PayPal retries the delivery later.
            raise WebhookRejected(f"PayPal verification call failed: {exc.__class__.__name__}") from None
        if status != "SUCCESS":
            raise WebhookRejected(f"PayPal says the signature is {status or 'unknown'}.")

    def parse_webhook(self, body, headers):
        try:
            event = json.loads(body)
        except ValueError:
            raise WebhookRejected("The body is not JSON.") from None
        self._verify(event, headers)
        resource = event.get("resource") or {}
        user_id, _, plan_id = (resource.get("custom_id") or "").partition(":")
        base = PaymentEvent(provider=self.key, event_id=event.get("id") or "", source_type=event.get("event_type", ""),
                            user_id=as_int(user_id), plan_id=as_int(plan_id), amount=_minor(resource.get("amount")),
                            currency=((resource.get("amount") or {}).get("currency_code") or "").lower() or None)
        if not base.event_id:
            raise WebhookRejected("The event has no id.")
        if base.source_type == "PAYMENT.CAPTURE.COMPLETED":
            base.kind, base.external_id = PAYMENT_SUCCEEDED, resource.get("id")
        elif base.source_type == "PAYMENT.CAPTURE.REFUNDED":
            # The resource is the refund; its "up" link names the capture it refunds.
            up = next((link["href"] for link in resource.get("links", []) if link.get("rel") == "up"), "")
            base.kind, base.external_id = REFUNDED, up.rstrip("/").rsplit("/", 1)[-1] or resource.get("id")
        return base
