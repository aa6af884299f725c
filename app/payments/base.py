"""The payment-gateway contract: PaymentEvent (what happened, in our words), WebhookRejected, registry.

Gateways read their credentials from encrypted settings on every call, never from code or env.
"""
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

_gateways = {}

# What a gateway may report; services.payments applies each kind.
PAYMENT_SUCCEEDED = "payment_succeeded"
PAYMENT_FAILED = "payment_failed"
REFUNDED = "refunded"
SUBSCRIPTION_CHANGED = "subscription_changed"
SUBSCRIPTION_ENDED = "subscription_ended"


class WebhookRejected(Exception):
    """A webhook that failed verification or cannot be read: answer 400 and change nothing."""


@dataclass
class PaymentEvent:
    provider: str
    event_id: str  # the provider's id of the event: the idempotency key
    source_type: str  # the provider's event type, kept for the record
    kind: str | None = None  # one of the constants above; None for events we only acknowledge
    created: int = 0  # provider timestamp (s), orders subscription changes
    external_id: str | None = None  # the payment's id at the provider (payment intent, invoice, capture)
    related_ids: list = field(default_factory=list)  # other ids a refund may name the payment by
    user_id: int | None = None
    customer_id: str | None = None
    plan_id: int | None = None
    price_id: str | None = None
    amount: int | None = None  # minor units
    currency: str | None = None
    subscription_id: str | None = None
    status: str | None = None
    period_end: int | None = None


class PaymentGateway(ABC):
    key = ""

    @abstractmethod
    def parse_webhook(self, body, headers):
        """Verify the raw body and headers with the provider, and return a PaymentEvent."""


def register(cls):
    _gateways[cls.key] = cls
    return cls


def gateway(key):
    try:
        return _gateways[key]()
    except KeyError:
        raise LookupError(f"No payment gateway {key!r}; known: {', '.join(sorted(_gateways))}.") from None


def as_int(value):
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
