"""Payment gateways as plugins: each turns its provider's webhooks into PaymentEvents (and Stripe also
starts checkouts). Business rules live once in services.payments."""
from app.payments import paypal, stripe_gateway  # noqa: F401  (each module registers itself)
from app.payments.base import PaymentEvent, WebhookRejected, gateway

__all__ = ["PaymentEvent", "WebhookRejected", "gateway"]
