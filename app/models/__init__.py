"""All tables, imported here so Alembic and the admin see every model."""
from app.models.analytics import Alert, JobDaily, JobErrorDaily, PageViewDaily, PaymentDaily, RollupMark
from app.models.apps import ApiIdempotency, ApiKey, ClientApp, WebhookDelivery
from app.models.audit import AuditLog
from app.models.backups import Backup
from app.models.billing import CreditLedger, Order, Payment, Plan, WebhookEvent
from app.models.catalog import AIFunction, FunctionFallback, Provider
from app.models.cms import Page
from app.models.coupons import Coupon, CouponRedemption
from app.models.jobs import Job, JobLog
from app.models.mail import EmailLog, EmailTemplate
from app.models.settings import Setting
from app.models.showcase import LandingExample, Prompt, ShowcaseItem, ShowcaseReport
from app.models.users import User

__all__ = [
    "AIFunction", "Alert", "JobDaily", "JobErrorDaily", "PageViewDaily", "PaymentDaily", "RollupMark", "ApiIdempotency", "ApiKey", "AuditLog", "ClientApp", "WebhookDelivery", "Backup", "FunctionFallback", "Coupon", "CouponRedemption", "CreditLedger", "EmailLog", "EmailTemplate", "Job", "JobLog", "Order", "Page", "Payment", "Plan",
    "Provider", "Setting", "User", "WebhookEvent", "LandingExample", "Prompt", "ShowcaseItem", "ShowcaseReport",
]
