"""Payment gateways as plugins: each starts checkouts for our orders and turns its provider's webhooks into
PaymentEvents. Business rules live once in services.payments, the only caller."""
from app.payments import paypal, stripe_gateway  # noqa: F401  (each module registers itself)
from app.payments.base import gateway

__all__ = ["gateway"]
