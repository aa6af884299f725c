"""Users: staff and customers share one table, told apart by role.

Balance is a cached integer of credits; CreditLedger (billing.py) is the history it must equal.
"""
from datetime import datetime

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db
from app.models.types import JSONType, secret, utcnow

ROLES = ("admin", "support", "viewer", "customer")
STAFF_ROLES = ("admin", "support", "viewer")


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (
        sa.CheckConstraint("balance >= 0", name="balance_not_negative"),
        sa.CheckConstraint(f"role IN {ROLES!r}", name="role_known"),
        # A client app's user: one row per app and external id (the X-User-ID its API calls send).
        sa.UniqueConstraint("app_id", "external_id", name="app_external_id"),
        sa.CheckConstraint("email IS NOT NULL OR app_id IS NOT NULL", name="email_unless_app_user"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Empty for a client app's user (app_id set): they never sign in and are never emailed.
    email: Mapped[str | None] = mapped_column(sa.String(254))
    password_hash: Mapped[str] = mapped_column(sa.String(256), info=secret())
    role: Mapped[str] = mapped_column(sa.String(16), default="customer", server_default="customer", index=True)
    balance: Mapped[int] = mapped_column(default=0, server_default="0")
    is_banned: Mapped[bool] = mapped_column(default=False, server_default=sa.false(), index=True)
    ban_reason: Mapped[str | None] = mapped_column(sa.String(500))
    plan_id: Mapped[int | None] = mapped_column(sa.ForeignKey("plans.id", ondelete="SET NULL"), index=True)
    # Credits a refund could not take back (already spent): the user is flagged in the admin while > 0.
    credit_shortfall: Mapped[int] = mapped_column(default=0, server_default="0", index=True)
    stripe_customer_id: Mapped[str | None] = mapped_column(sa.String(64), index=True, unique=True)
    subscription_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    subscription_status: Mapped[str | None] = mapped_column(sa.String(32))
    subscription_period_end: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # Stripe `event.created` of the last subscription change applied: older events arrive late and are ignored.
    subscription_event_at: Mapped[int | None] = mapped_column(sa.BigInteger)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, index=True)
    last_login_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # Part of every session's and remember-me cookie's identity: bumping it signs the user out everywhere.
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    # Two-factor authentication: the TOTP secret (encrypted), the last time step accepted (a code is never
    # accepted twice) and the unused recovery codes, hashed.
    totp_secret: Mapped[str | None] = mapped_column(sa.Text, info=secret())
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    recovery_codes: Mapped[list | None] = mapped_column(JSONType, info=secret())
    # Set when the customer followed the link emailed to this address (a changed address is verified too).
    email_verified_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # The customer's choice to be emailed when a job fails and is refunded (transactional mail is always sent).
    email_job_failed: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    # The language emails are written in (services/mail_templates.py); None means the site's default language.
    language: Mapped[str | None] = mapped_column(sa.String(16))
    # The owner deleted the account: the row stays, anonymised, for the payments and ledger that name it.
    deleted_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # Referrals: this customer's own code (made when first shown), and who referred them at sign-up.
    referral_code: Mapped[str | None] = mapped_column(sa.String(16), unique=True)
    referred_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"), index=True)

    app_id: Mapped[int | None] = mapped_column(sa.ForeignKey("apps.id", ondelete="RESTRICT"), index=True)
    external_id: Mapped[str | None] = mapped_column(sa.String(255))

    plan = relationship("Plan", lazy="joined")
    app = relationship("ClientApp")  # loaded only when asked for: most users are not an app's

    @validates("email")
    def _normalise_email(self, _key, value):
        return (value or "").strip().lower() or None

    def set_password(self, password):
        self.password_hash = generate_password_hash(password)

    def check_password(self, password):
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    def get_id(self):
        # Flask-Login's alternative id: a cookie issued before the version moved no longer loads this user.
        return f"{self.id}:{self.session_version or 0}"

    @property
    def has_2fa(self):
        return bool(self.totp_secret)

    @property
    def is_staff(self):
        return self.role in STAFF_ROLES

    @property
    def is_active(self):
        # Flask-Login refuses inactive users at login and drops them from existing sessions.
        return not self.is_banned

    def __str__(self):
        return self.email or f"{self.external_id} (app #{self.app_id})"


# Case-insensitive uniqueness enforced by the database, not only by the lower-casing validator.
sa.Index("uq_users_email_lower", sa.func.lower(User.email), unique=True)
