"""The payment-gateway contract and registry: each gateway starts checkouts for our orders and turns its
provider's webhooks into PaymentEvents (app/services/payment_events.py).

Gateways read their credentials from encrypted settings on every call and their API hosts from the app config
(environment only), never from code or editable settings.
"""
from abc import ABC, abstractmethod

_gateways = {}


class PaymentGateway(ABC):
    key = ""

    @abstractmethod
    def configured(self):
        """Whether the owner entered what this gateway needs to take payments."""

    @abstractmethod
    def start(self, order, user, return_url, cancel_url):
        """Create the gateway's checkout for a pending order: (checkout id, URL to send the buyer to).
        Raises GatewayError."""

    def customer_url(self, customer_id):
        """The customer's page in the gateway's own dashboard, or None where the gateway has none."""
        return None

    def payment_url(self, external_id):
        """The payment's page in the gateway's own dashboard, or None where unknown."""
        return None

    @abstractmethod
    def parse_webhook(self, body, headers):
        """Verify the raw body and headers with the provider and return a PaymentEvent, or None for an event
        we do not handle (acknowledged, nothing recorded). Raises WebhookRejected."""


def register(cls):
    _gateways[cls.key] = cls
    return cls


def gateway(key):
    try:
        return _gateways[key]()
    except KeyError:
        raise LookupError(f"No payment gateway {key!r}; known: {', '.join(sorted(_gateways))}.") from None
