"""Runtime settings: the typed registry of what the owner may change in the admin, and reading them live.

Values are rows of the settings table; secrets are stored as Fernet ciphertext and decrypted only for code.
How every process sees a save at once: each app keeps all settings in memory with the token of the row
"_version", which every save replaces in the same transaction as the change. The first read in a database
session (one per request, one per job) compares that token with one primary-key query and reloads every
row when it moved. The database, not Redis, holds it: one mechanism with or without Redis, and a token
that can never disagree with the values it describes. A random token, not a counter, so a restored backup
or an emptied table can never repeat a version some process has already cached.
"""
import ipaddress
import re
import uuid
import zoneinfo
from dataclasses import dataclass
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app
from werkzeug.sansio.utils import host_is_trusted

from app.extensions import db
from app.models import AIFunction, Setting
from app.services import audit
from app.services.crypto import MASK, decrypt_json, encrypt_json, mask, rotate

VERSION_KEY = "_version"
_CHECKED = "neurapix_settings_checked"


class SettingError(ValueError):
    """Values the owner must correct: {key: message}."""

    def __init__(self, errors):
        super().__init__("; ".join(f"{k}: {m}" for k, m in errors.items()))
        self.errors = errors


# --- kinds: how a value is entered, checked and shown ---


class Kind:
    input = "text"
    secret = False

    def parse(self, raw):
        """Form text → stored value; ValueError with a message for the owner."""
        return (raw or "").strip()

    def from_form(self, form, name, current):
        # A field the form did not carry keeps its value: a partial post never blanks the rest.
        return self.parse(form[name]) if name in form else current

    def shown(self, value):
        """What a person may see of the value."""
        return value


class Text(Kind):
    def __init__(self, max_length=200):
        self.max_length = max_length

    def parse(self, raw):
        value = super().parse(raw)
        if len(value) > self.max_length:
            raise ValueError(f"Use at most {self.max_length} characters.")
        return value


class Email(Kind):
    input = "email"

    def parse(self, raw):
        value = super().parse(raw)
        if value and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError("Enter an email address like support@example.com, or leave it empty.")
        return value


class Url(Kind):
    input = "url"

    def parse(self, raw):
        value = super().parse(raw).rstrip("/")
        if value and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
            raise ValueError("Enter a full address starting with https:// (or http://), or leave it empty.")
        return value


class PublicUrl(Url):
    """The site's own origin, used for every absolute link; its host must be one production accepts."""

    def parse(self, raw):
        value = super().parse(raw)
        if not value:
            return value
        parts = urlsplit(value)
        if parts.path or parts.query or parts.fragment or parts.username or not parts.hostname:
            raise ValueError("Give only the scheme and host, e.g. https://www.example.com (no path).")
        trusted = current_app.config.get("TRUSTED_HOSTS")
        if trusted and not host_is_trusted(parts.netloc, trusted):
            raise ValueError(f"{parts.hostname} is not in the server's TRUSTED_HOSTS environment variable, so "
                             "requests to it would be refused: add it there first, then save this.")
        return value


class Networks(Kind):
    """IPv4/IPv6 addresses or CIDR blocks, separated by commas, spaces or new lines; stored normalised."""

    def parse(self, raw):
        networks = []
        for item in re.split(r"[\s,]+", super().parse(raw)):
            if not item:
                continue
            try:
                networks.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise ValueError(f"{item} is not an IP address or CIDR block; write e.g. 203.0.113.0/24 or "
                                 "2001:db8::/32.") from None
        return networks

    def shown(self, value):
        return ", ".join(value or [])


class Language(Kind):
    def parse(self, raw):
        value = super().parse(raw).lower()
        if not re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]{2,8})?", value):
            raise ValueError("Use a language code such as en, de or pt-br.")
        return value


class TimeZone(Kind):
    """An IANA timezone name (Europe/Berlin), checked against the zone database."""

    def parse(self, raw):
        value = super().parse(raw) or "UTC"
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError("Use a timezone name such as UTC, Europe/Berlin or America/New_York.") from None
        return value


class Integer(Kind):
    input = "number"

    def __init__(self, minimum, maximum):
        self.minimum, self.maximum = minimum, maximum

    def parse(self, raw):
        try:
            value = int(super().parse(raw))
        except ValueError:
            raise ValueError("Enter a whole number.") from None
        if not self.minimum <= value <= self.maximum:
            raise ValueError(f"Use a number from {self.minimum} to {self.maximum}.")
        return value


class Boolean(Kind):
    """A checkbox: browsers send nothing when it is unticked, so the form also carries "<key>__shown"."""

    input = "checkbox"

    def from_form(self, form, name, current):
        if f"{name}__shown" not in form:
            return current
        return form.get(name) in ("y", "on", "true", "1")


class Choice(Kind):
    input = "select"

    def __init__(self, *choices):
        self.choices = choices  # (value, label)

    def parse(self, raw):
        value = super().parse(raw)
        if value not in {v for v, _label in self.choices}:
            raise ValueError(f"Choose one of: {', '.join(label for _v, label in self.choices)}.")
        return value


class Secret(Kind):
    """Never shown again once saved: a blank entry keeps the stored value, a ticked box removes it."""

    input = "password"
    secret = True

    def from_form(self, form, name, current):
        if form.get(f"{name}__clear"):
            return ""
        entered = form.get(name, "")
        return entered.strip() if entered.strip() else current

    def shown(self, value):
        return mask(value)


class SecretUrl(Secret):
    """A URL that carries its own credential (a Slack incoming webhook): checked like a URL, kept like a secret."""

    def from_form(self, form, name, current):
        value = super().from_form(form, name, current)
        return Url().parse(value) if value != current else value


class FunctionPages(Kind):
    """The functions whose customer page is switched off, stored as their keys so new ones start on."""

    input = "function-pages"

    def from_form(self, form, name, current):
        shown = set(form.getlist(f"{name}__shown"))
        on = set(form.getlist(name))
        return sorted((set(current or []) - shown) | (shown - on))


@dataclass(frozen=True)
class Definition:
    key: str
    group: str
    kind: Kind
    default: object
    label: str
    help: str = ""

    @property
    def secret(self):
        return self.kind.secret


GROUPS = (
    ("site", "Site", ""),
    ("storage", "Storage", "Where uploads and results are written. Switching backend applies to the next "
                           "file written; files already stored stay readable where they are."),
    ("payments", "Payments", "Keys used by the Stripe and PayPal integrations."),
    ("providers", "Providers", "Endpoints, tokens, timeouts and retries are set per provider in "
                               "Catalog → Providers and apply to the next job."),
    ("security", "Security", "Secrets on this page and on providers are encrypted at rest with the server's "
                             "ENCRYPTION_KEY; the command flask rotate-keys re-encrypts them under a new key."),
    ("flags", "Feature flags and maintenance", ""),
    ("backups", "Backups", "A daily backup archive of the whole database (Admin → Backups), kept on this server's "
                           "disk or in the S3 bucket set under Storage. The oldest daily archives beyond the number "
                           "kept are deleted after each successful one; archives made by hand stay until deleted."),
    ("email", "Email", "The SMTP server every message goes out through (verification, password reset, receipts, "
                       "job failures). Every send is listed under Security → Emails."),
    ("customers", "Customers", "Sign-up, email verification and welcome credits."),
    ("api", "REST API", "Client apps (Admin → Client apps) call /api/v1 with their keys; the switch is under "
                        "Feature flags."),
    ("alerts", "Alerts", "Incidents listed on the dashboard and posted (Slack-compatible JSON) to the webhook "
                         "below, once when one starts and once when it ends. Checked by the scheduler process."),
)

DEFINITIONS = (
    Definition("site.name", "site", Text(80), "Neurapix", "Site name",
               "Shown in the header, page titles and link previews."),
    Definition("site.default_language", "site", Language(), "en", "Default language",
               "Language of each page's main fields; visitors whose language a page lacks see this one."),
    Definition("site.favicon_url", "site", Url(), "", "Favicon URL",
               "An https address of a .ico or .png icon (e.g. on your CDN); empty: the built-in icon."),
    Definition("site.social_image_url", "site", Url(), "", "Social preview image URL",
               "The picture link previews show (1200×630 works everywhere); empty: the built-in one."),
    Definition("site.support_email", "site", Email(), "", "Support email", "Shown to customers who need help."),
    Definition("site.public_url", "site", PublicUrl(), "", "Public URL",
               "The site's address, e.g. https://www.example.com: canonical links, the sitemap and payment "
               "return pages use it instead of the Host header a request claims, and providers report finished "
               "jobs to it by webhook (without it, jobs are finished by polling the provider)."),
    Definition("site.timezone", "site", TimeZone(), "UTC", "Timezone",
               "The admin shows times in this zone, e.g. Europe/Berlin or America/New_York (IANA names)."),
    Definition("storage.backend", "storage", Choice(("disk", "Local disk"), ("s3", "S3 or S3-compatible")),
               "disk", "Storage backend"),
    Definition("storage.s3_bucket", "storage", Text(63), "", "S3 bucket"),
    Definition("storage.s3_region", "storage", Text(40), "", "S3 region", "e.g. eu-central-1; empty means us-east-1."),
    Definition("storage.s3_endpoint_url", "storage", Url(), "", "S3 endpoint URL",
               "Only for S3-compatible services (MinIO, Wasabi, R2…); leave empty for Amazon S3."),
    Definition("storage.s3_access_key_id", "storage", Text(128), "", "S3 access key id"),
    Definition("storage.s3_secret_access_key", "storage", Secret(), "", "S3 secret access key"),
    Definition("storage.cdn_base_url", "storage", Url(), "", "Public CDN base URL",
               "When set, downloads link to this URL + the object key; otherwise to a presigned S3 URL."),
    Definition("storage.presign_seconds", "storage", Integer(60, 7 * 24 * 3600), 3600, "Presigned URL lifetime (s)"),
    Definition("payments.stripe_publishable_key", "payments", Text(200), "", "Stripe publishable key"),
    Definition("payments.stripe_secret_key", "payments", Secret(), "", "Stripe secret key"),
    Definition("payments.stripe_webhook_secret", "payments", Secret(), "", "Stripe webhook signing secret"),
    Definition("payments.paypal_mode", "payments", Choice(("sandbox", "Sandbox"), ("live", "Live")), "sandbox",
               "PayPal mode"),
    Definition("payments.paypal_client_id", "payments", Text(200), "", "PayPal client id"),
    Definition("payments.paypal_client_secret", "payments", Secret(), "", "PayPal client secret"),
    Definition("payments.paypal_webhook_id", "payments", Text(100), "", "PayPal webhook id"),
    Definition("providers.max_output_bytes", "providers", Integer(1024 * 1024, 1024 * 1024 * 1024),
               50 * 1024 * 1024, "Largest provider output (bytes)",
               "A result file over this size fails the job (refunded); downloads stop at this size."),
    Definition("providers.max_output_pixels", "providers", Integer(1_000_000, 1_000_000_000), 64_000_000,
               "Largest provider output (pixels)",
               "Width × height; a larger result fails the job (refunded) before it is decoded."),
    # Accounts and sessions (who may act on whom, session lifetimes, two-factor authentication).
    Definition("security.credit_adjust_max", "security", Integer(1, 10_000_000), 10_000,
               "Largest single credit adjustment", "Staff cannot add or remove more credits than this at once."),
    Definition("security.staff_idle_minutes", "security", Integer(1, 24 * 60), 30, "Staff idle timeout (minutes)",
               "A staff session with no request for this long ends; staff never get a remember-me cookie."),
    Definition("security.staff_session_hours", "security", Integer(1, 7 * 24), 12, "Staff session lifetime (hours)",
               "A staff session ends this long after login, however active."),
    Definition("security.customer_session_days", "security", Integer(1, 365), 14,
               "Customer session lifetime (days)", "How long \"Keep me signed in\" and any customer session last."),
    Definition("security.require_2fa_admin", "security", Boolean(), False, "Require 2FA for admins",
               "Admins without two-factor authentication are sent to set it up before using the admin."),
    Definition("security.require_2fa_support", "security", Boolean(), False, "Require 2FA for support"),
    Definition("security.require_2fa_viewer", "security", Boolean(), False, "Require 2FA for viewers"),
    Definition("security.admin_allowlist", "security", Networks(), [], "Admin IP allow-list",
               "Addresses or CIDR blocks (IPv4 and IPv6), comma-separated, that may open /admin, e.g. "
               "203.0.113.0/24, 2001:db8::/32. Empty: every address. Others get 403 and an audit row."),
    Definition("flags.maintenance", "flags", Boolean(), False, "Maintenance mode",
               "Customers see the maintenance page; staff, the admin and payment webhooks keep working."),
    Definition("flags.maintenance_message", "flags", Text(500),
               "We are improving Neurapix and will be back shortly.", "Maintenance message"),
    Definition("flags.signup", "flags", Boolean(), True, "Sign-up open", "Off: /signup tells visitors it is closed."),
    Definition("flags.api", "flags", Boolean(), True, "REST API enabled"),
    Definition("api.allow_hosts", "api", Text(500), "", "Hosts on internal addresses the API may call",
               "Comma-separated host names or addresses that image URLs and webhook URLs may use although they "
               "resolve to a private or loopback address (a server on your own network). Empty: none."),
    Definition("flags.function_pages_off", "flags", FunctionPages(), [], "Function pages",
               "Ticked functions have their page on the site. Unticking hides the page only; the function "
               "itself stays enabled (see Catalog → AI functions)."),
    Definition("backups.enabled", "backups", Boolean(), False, "Daily backup",
               "Needs the scheduler process (Procfile: scheduler) and a worker running."),
    Definition("backups.time_of_day", "backups", Choice(*[(f"{h:02d}:00", f"{h:02d}:00 UTC") for h in range(24)]),
               "03:00", "Time of day (UTC)"),
    Definition("backups.keep", "backups", Integer(1, 365), 7, "Daily backups kept"),
    Definition("backups.destination", "backups", Choice(("disk", "This server's disk"),
                                                        ("s3", "S3 (the bucket set under Storage)")),
               "disk", "Store backups on"),
    # Customer lifecycle: outgoing email (SMTP) and account rules.
    Definition("email.smtp_host", "email", Text(253), "", "SMTP host",
               "e.g. smtp.example.com. Empty: no email is sent (each message is logged as failed)."),
    Definition("email.smtp_port", "email", Integer(1, 65535), 587, "SMTP port", "587 for STARTTLS, 465 for TLS."),
    Definition("email.smtp_security", "email", Choice(("starttls", "STARTTLS"), ("tls", "TLS (SMTPS)"),
                                                      ("none", "None (local relay only)")),
               "starttls", "Connection security"),
    Definition("email.smtp_username", "email", Text(254), "", "SMTP user name", "Empty: no login."),
    Definition("email.smtp_password", "email", Secret(), "", "SMTP password"),
    Definition("email.from_address", "email", Email(), "", "From address",
               "The sender of every message, e.g. hello@example.com."),
    Definition("customers.require_verified_email", "customers", Boolean(), False,
               "Verified email needed to run jobs",
               "On: customers must follow the link emailed at sign-up before they can run a function."),
    Definition("customers.welcome_credits", "customers", Integer(0, 1_000_000), 0, "Welcome credits",
               "Granted once, when a customer verifies their email address."),
    Definition("customers.low_balance", "customers", Integer(0, 1_000_000), 10, "Low balance",
               "The admin's users list marks customers with fewer credits than this."),
    Definition("customers.deleted_jobs", "customers", Choice(("anonymise", "Keep job records, without files"),
                                                             ("delete", "Delete job records too")),
               "anonymise", "When a customer deletes their account",
               "Their uploaded and result files are always deleted; payments are always kept for accounting."),
    Definition("customers.referral_signup_credits", "customers", Integer(0, 1_000_000), 10,
               "Referral: credits for the new customer",
               "Granted once, when a customer who signed up through a referral link verifies their email."),
    Definition("customers.referral_referrer_credits", "customers", Integer(0, 1_000_000), 50,
               "Referral: credits for the referrer", "Granted once, on the referred customer's first paid order."),
    Definition("customers.referral_referred_credits", "customers", Integer(0, 1_000_000), 20,
               "Referral: credits for the referred customer on their first paid order", "Granted once."),
    Definition("customers.referral_same_domain_daily", "customers", Integer(0, 1000), 3,
               "Referrals per day to one email domain",
               "A referrer's sign-ups sharing one email domain beyond this many in 24 hours earn nothing."),
    Definition("alerts.webhook_url", "alerts", SecretUrl(), "", "Alert webhook URL",
               "A Slack (or compatible) incoming webhook, e.g. https://hooks.slack.com/services/…. Empty: alerts "
               "are only listed on the dashboard."),
    Definition("alerts.webhook_internal", "alerts", Boolean(), False, "Webhook on an internal address",
               "On: the webhook may be on this server's network (a relay of yours); off: public addresses only."),
    Definition("alerts.provider_failure_rate", "alerts", Integer(1, 100), 25, "Provider failure rate (%)",
               "Alert when more than this share of a provider's jobs fail within the window below."),
    Definition("alerts.provider_min_jobs", "alerts", Integer(1, 100_000), 5, "Jobs before a failure rate counts",
               "A provider's failure rate is judged only once it has finished this many jobs in the window."),
    Definition("alerts.window_minutes", "alerts", Integer(5, 24 * 60), 60, "Failure rate window (minutes)"),
    Definition("alerts.queue_wait_minutes", "alerts", Integer(1, 24 * 60), 10, "Queue wait (minutes)",
               "Alert when a job has waited this long in the queue without starting."),
    Definition("alerts.credit_adjustment", "alerts", Integer(1, 10_000_000), 1000, "Large credit adjustment",
               "Alert when staff add or remove at least this many credits in one go."),
)
REGISTRY = {d.key: d for d in DEFINITIONS}


# --- reading ---


class _Snapshot:
    """All rows as loaded at one version; secrets stay ciphertext until code asks for one."""

    def __init__(self, version, rows):
        self.version = version
        self.rows = rows  # key -> (value, is_secret)


def _load():
    rows = {key: (value, is_secret) for key, value, is_secret in
            db.session.execute(sa.select(Setting.key, Setting.value, Setting.is_secret))}
    return _Snapshot(rows.pop(VERSION_KEY, (None, False))[0], rows)


def _snapshot():
    app = current_app._get_current_object()
    session = db.session()
    snapshot = app.extensions.get("neurapix_settings")
    if snapshot is None or not session.info.get(_CHECKED):
        version = db.session.scalar(sa.select(Setting.value).where(Setting.key == VERSION_KEY))
        if snapshot is None or version != snapshot.version:
            snapshot = app.extensions["neurapix_settings"] = _load()
        session.info[_CHECKED] = True
    return snapshot


def get(key):
    """The current value of a defined setting (its default when never saved), secrets decrypted."""
    definition = REGISTRY[key]
    stored = _snapshot().rows.get(key)
    if stored is None:
        return definition.default
    value, is_secret = stored
    return decrypt_json(value) if is_secret else value


def flag(name):
    """A feature flag by short name: flag("signup"), flag("maintenance")."""
    return bool(get(f"flags.{name}"))


def function_page_on(key):
    return key not in get("flags.function_pages_off")


def shown(key):
    """The value as a person may see it: secrets masked."""
    try:
        return REGISTRY[key].kind.shown(get(key))
    except RuntimeError:  # encrypted under a key this server no longer has
        return "cannot be decrypted: enter it again"


def for_display():
    """[(group key, title, note, [(definition, shown value)])] in the admin's order."""
    return [(group, title, note, [(d, shown(d.key)) for d in DEFINITIONS if d.group == group])
            for group, title, note in GROUPS]


def function_choices():
    return db.session.execute(sa.select(AIFunction.key, AIFunction.name).order_by(AIFunction.name)).all()


# --- writing ---


def parse_form(form):
    """The values a submitted admin form asks for, {key: value}; SettingError lists what to correct."""
    values, errors = {}, {}
    for d in DEFINITIONS:
        try:
            values[d.key] = d.kind.from_form(form, d.key, get(d.key))
        except ValueError as exc:
            errors[d.key] = str(exc)
    if values.get("storage.backend") == "s3" and not values.get("storage.s3_bucket"):
        errors["storage.s3_bucket"] = "Name the bucket new files go to, or keep the local backend."
    if values.get("backups.destination") == "s3" and not values.get("storage.s3_bucket"):
        errors["backups.destination"] = "Set the S3 bucket under Storage first, or keep backups on this server's disk."
    if errors:
        raise SettingError(errors)
    return values


def _audit_value(definition, value):
    return (MASK if value else "") if definition.secret else value


def update(values, actor=None):
    """Save changed values, audit each change (secrets masked), bump the version, commit.

    Returns the keys that changed. Concurrent saves queue on the version row, so audit rows
    record true before/after values.
    """
    locked = db.session.scalars(sa.select(Setting).where(Setting.key == VERSION_KEY).with_for_update()).first()
    db.session.info.pop(_CHECKED, None)  # read what is committed now, after the lock
    changed = []
    for key, value in values.items():
        definition = REGISTRY[key]
        old = get(key)
        if value == old:
            continue
        row = db.session.get(Setting, key)
        if definition.secret and not value:
            db.session.delete(row)  # a removed secret is simply absent
        else:
            row = row or Setting(key=key)
            row.is_secret = definition.secret
            row.value = encrypt_json(value) if definition.secret else value
            db.session.add(row)
        audit.record("update", "Setting", key, old={"value": _audit_value(definition, old)},
                     new={"value": _audit_value(definition, value)}, actor=actor)
        changed.append(key)
    if changed:
        if locked is None:
            db.session.add(Setting(key=VERSION_KEY, value=uuid.uuid4().hex))
        else:
            locked.value = uuid.uuid4().hex
    db.session.commit()
    db.session.info.pop(_CHECKED, None)
    return changed


def rotate_secrets():
    """Re-encrypt every secret setting under the newest ENCRYPTION_KEY; the caller commits. Returns the count."""
    rows = db.session.scalars(sa.select(Setting).where(Setting.is_secret.is_(True))).all()
    for row in rows:
        row.value = rotate(row.value)
    return len(rows)
