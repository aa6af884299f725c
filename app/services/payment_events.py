"""What payment gateways report, in our words: PaymentEvent, its kinds, the gateways' exceptions, money helpers.

A leaf module: gateways (app/payments) build these and services.payments applies them; it imports neither.
"""
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

# What a gateway may report; services.payments applies each kind.
ORDER_PAID = "order_paid"  # a checkout we created was paid (Stripe Checkout, PayPal capture)
PAYMENT_SUCCEEDED = "payment_succeeded"  # a subscription's invoice was paid (first period or a renewal)
PAYMENT_FAILED = "payment_failed"
REFUNDED = "refunded"
SUBSCRIPTION_CHANGED = "subscription_changed"
SUBSCRIPTION_ENDED = "subscription_ended"

CENT = Decimal("0.01")
# Payments.amount is a PostgreSQL integer: amounts beyond it are recorded as 0 (the reason names the real one).
MAX_MINOR = 2**31 - 1


class WebhookRejected(Exception):
    """A webhook that failed verification or cannot be read: answer 400 and change nothing."""


class GatewayError(Exception):
    """A gateway call that did not work (not configured, unreachable, refused); the message is for logs."""


@dataclass
class PaymentEvent:
    provider: str
    event_id: str  # the provider's id of the event: the idempotency key
    source_type: str  # the provider's event type, kept for the record
    kind: str | None = None  # one of the constants above; None for events we only acknowledge
    created: int = 0  # provider timestamp (s), orders subscription changes
    order_ref: str | None = None  # our order id as the gateway echoes it back (untrusted text)
    checkout_id: str | None = None  # the gateway's id of the checkout we created (Stripe session, PayPal order)
    external_id: str | None = None  # the payment's id at the provider (payment intent, invoice, capture)
    related_ids: list = field(default_factory=list)  # other ids a refund may name the payment by
    paid: bool = False  # the gateway says the money was taken
    amount: Decimal | None = None  # major units, exactly as the gateway stated them
    currency: str | None = None  # upper case
    subscription_id: str | None = None
    status: str | None = None
    period_end: int | None = None


def as_int(value):
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def text(value, limit=255):
    """An id or status from a gateway's JSON as bounded text (None stays None)."""
    return None if value in (None, "") else str(value)[:limit]


def from_minor(minor):
    """Integer minor units (our columns, Stripe's amounts) → an exact Decimal in major units."""
    return None if minor is None else (Decimal(int(minor)) * CENT)


def parse_decimal(text):
    """A gateway's decimal amount string ("9.99") → Decimal, or None when it is not a finite number."""
    try:
        value = Decimal(str(text))
    except (InvalidOperation, TypeError, ValueError):
        return None
    return value if value.is_finite() else None


def to_minor(amount):
    """A Decimal in major units → integer minor units, or None when it is not a whole number of cents."""
    if amount is None:
        return None
    minor = amount / CENT
    if minor != minor.to_integral_value() or abs(minor) > MAX_MINOR:
        return None
    return int(minor)
