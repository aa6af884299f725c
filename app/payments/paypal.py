"""PayPal: Orders v2 created on our server for our orders (captured when the buyer returns), and webhooks
verified by PayPal's verify-webhook-signature API (OAuth2 client credentials), after cheap local checks.

Credentials come from settings (payments group): paypal_client_id, paypal_client_secret, paypal_webhook_id and
paypal_mode; the API host from the app config PAYPAL_API_BASE (environment only), else the mode's host.
Our order id travels as the purchase unit's custom_id.
"""
import json
from urllib.parse import quote, urlsplit

import requests
from flask import current_app

from app.payments.base import PaymentGateway, register
from app.services import settings
from app.services.payment_events import (ORDER_PAID, REFUNDED, GatewayError, PaymentEvent, WebhookRejected,
                                         from_minor, parse_decimal, text)

TIMEOUT = 10
API_BASES = {"sandbox": "https://api-m.sandbox.paypal.com", "live": "https://api-m.paypal.com"}
# Where a merchant sees a captured payment; PayPal has no customer page to link to.
ACTIVITY = {"sandbox": "https://www.sandbox.paypal.com/activity/payment/", "live": "https://www.paypal.com/activity/payment/"}
HEADERS = {"auth_algo": "PAYPAL-AUTH-ALGO", "cert_url": "PAYPAL-CERT-URL", "transmission_id": "PAYPAL-TRANSMISSION-ID",
           "transmission_sig": "PAYPAL-TRANSMISSION-SIG", "transmission_time": "PAYPAL-TRANSMISSION-TIME"}
HANDLED = ("PAYMENT.CAPTURE.COMPLETED", "PAYMENT.CAPTURE.REFUNDED")


def _cert_url_is_paypals(url):
    """PayPal signs with certificates it serves over https from its own domain; anything else is junk."""
    try:
        parts = urlsplit(url)
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        return False
    return (parts.scheme == "https" and not parts.username and not parts.password and port in (None, 443)
            and (host == "paypal.com" or host.endswith(".paypal.com")))


def _amount(amount):
    if not isinstance(amount, dict):
        return None, None
    return parse_decimal(amount.get("value")), (str(amount.get("currency_code") or "").upper() or None)


def _capture_event(capture, event_id, source_type, checkout_id=None):
    """A capture (from the capture call or the capture webhook) as the event that pays one of our orders."""
    value, currency = _amount(capture.get("amount"))
    related = (capture.get("supplementary_data") or {}).get("related_ids") or {}
    return PaymentEvent(provider=PayPalGateway.key, event_id=event_id, source_type=source_type, kind=ORDER_PAID,
                        order_ref=text(capture.get("custom_id")),
                        checkout_id=text(checkout_id or related.get("order_id")),
                        external_id=text(capture.get("id")), paid=capture.get("status") == "COMPLETED",
                        status=text(capture.get("status"), 32), amount=value, currency=text(currency, 8))


@register
class PayPalGateway(PaymentGateway):
    key = "paypal"

    def configured(self):
        return bool(settings.get("payments.paypal_client_id") and settings.get("payments.paypal_client_secret"))

    def payment_url(self, external_id):
        if not external_id:
            return None
        return ACTIVITY[settings.get("payments.paypal_mode")] + quote(external_id, safe="")

    def _base(self):
        base = current_app.config.get("PAYPAL_API_BASE") or API_BASES[settings.get("payments.paypal_mode")]
        return base.rstrip("/")

    def _token(self, base):
        client_id, secret = settings.get("payments.paypal_client_id"), settings.get("payments.paypal_client_secret")
        if not (client_id and secret):
            raise GatewayError("PayPal is not configured: set the client id and secret in Settings → Payments.")
        resp = requests.post(f"{base}/v1/oauth2/token", auth=(client_id, secret), timeout=TIMEOUT,
                             data={"grant_type": "client_credentials"})
        resp.raise_for_status()
        return resp.json()["access_token"]

    def _call(self, path, body, request_id=None):
        """POST to PayPal's REST API with a fresh token; (status, JSON). Network and auth failures raise."""
        base = self._base()
        try:
            headers = {"Authorization": f"Bearer {self._token(base)}", "Prefer": "return=representation"}
            if request_id:
                headers["PayPal-Request-Id"] = request_id  # PayPal answers a repeat with the first result
            resp = requests.post(f"{base}{path}", json=body, headers=headers, timeout=TIMEOUT)
            return resp.status_code, resp.json()
        except (requests.RequestException, ValueError, KeyError) as exc:
            raise GatewayError(f"PayPal call {path} failed: {exc.__class__.__name__}") from None

    def start(self, order, user, return_url, cancel_url):
        value = from_minor(order.amount)
        status, body = self._call("/v2/checkout/orders", {
            "intent": "CAPTURE",
            "purchase_units": [{"reference_id": f"order-{order.id}", "custom_id": str(order.id),
                                "description": order.plan_name[:127],
                                "amount": {"currency_code": order.currency, "value": f"{value:.2f}"}}],
            "payment_source": {"paypal": {"experience_context": {
                "return_url": return_url, "cancel_url": cancel_url, "user_action": "PAY_NOW",
                "shipping_preference": "NO_SHIPPING"}}},
        }, request_id=f"neurapix-order-{order.id}")
        link = next((item.get("href") for item in body.get("links") or []
                     if item.get("rel") in ("approve", "payer-action")), None)
        if status not in (200, 201) or not body.get("id") or not link:
            raise GatewayError(f"PayPal refused the order: HTTP {status} {body.get('name', '')}")
        return body["id"], link

    def capture(self, order):
        """Capture an approved PayPal order: the PaymentEvent for its capture, or None when PayPal says it
        was already captured (the other request or the webhook applies it). Raises GatewayError."""
        status, body = self._call(f"/v2/checkout/orders/{order.gateway_reference}/capture", {},
                                  request_id=f"neurapix-capture-{order.id}")
        issues = {d.get("issue") for d in body.get("details") or []}
        if status == 422 and "ORDER_ALREADY_CAPTURED" in issues:
            return None
        units = body.get("purchase_units") or [{}]
        captures = ((units[0].get("payments") or {}).get("captures")) or []
        if status not in (200, 201) or not captures:
            raise GatewayError(f"PayPal did not capture: HTTP {status} {', '.join(sorted(filter(None, issues)))}")
        capture = captures[0]
        # The capture answer may carry custom_id on the purchase unit rather than on the capture itself.
        capture = {"custom_id": units[0].get("custom_id"), **capture}
        return _capture_event(capture, f"capture:{capture.get('id')}", "CAPTURE.RETURN", checkout_id=body.get("id"))

    def _check_cheaply(self, event, headers):
        """Everything we can refuse without calling PayPal: junk must not cost outbound requests."""
        missing = [header for header in HEADERS.values() if not headers.get(header)]
        if missing:
            raise WebhookRejected(f"Missing PayPal headers: {', '.join(missing)}.")
        if not (settings.get("payments.paypal_webhook_id") and self.configured()):
            raise WebhookRejected("PayPal webhooks are not configured (client id, secret and webhook id).")
        if not _cert_url_is_paypals(headers.get("PAYPAL-CERT-URL")):
            raise WebhookRejected("The certificate URL is not on PayPal's domain.")
        if not isinstance(event.get("id"), str) or not event["id"]:
            raise WebhookRejected("The event has no id.")

    def _verify(self, event, headers):
        body = {name: headers.get(header) for name, header in HEADERS.items()}
        body.update(webhook_id=settings.get("payments.paypal_webhook_id"), webhook_event=event)
        try:
            status, answer = self._call("/v1/notifications/verify-webhook-signature", body)
        except GatewayError as exc:
            # Not verified is not trusted: PayPal retries the delivery later.
            raise WebhookRejected(str(exc)) from None
        verdict = answer.get("verification_status") if status == 200 else None
        if verdict != "SUCCESS":
            raise WebhookRejected(f"PayPal says the signature is {verdict or 'unknown'} (HTTP {status}).")

    def parse_webhook(self, body, headers):
        try:
            event = json.loads(body)
        except ValueError:
            raise WebhookRejected("The body is not JSON.") from None
        if not isinstance(event, dict):
            raise WebhookRejected("The body is not a PayPal event.")
        if event.get("event_type") not in HANDLED:
            return None
        self._check_cheaply(event, headers)
        self._verify(event, headers)
        resource = event.get("resource")
        if not isinstance(resource, dict):
            raise WebhookRejected("The event carries no resource.")
        if event["event_type"] == "PAYMENT.CAPTURE.COMPLETED":
            return _capture_event(resource, event["id"], event["event_type"])
        # A refund: its "up" link names the capture it refunds.
        up = next((link.get("href") or "" for link in resource.get("links") or [] if link.get("rel") == "up"), "")
        value, currency = _amount(resource.get("amount"))
        return PaymentEvent(provider=self.key, event_id=event["id"], source_type=event["event_type"], kind=REFUNDED,
                            external_id=text(up.rstrip("/").rsplit("/", 1)[-1] or resource.get("id")),
                            amount=value, currency=currency)
