"""Configuration classes read from the environment.

Only what boots a process lives here (database, Redis, keys); everything the owner
changes at run time lives in the database and is edited from the admin.
"""
import os
import secrets
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"


def _database_url(default):
    url = os.environ.get("DATABASE_URL") or default
    # Heroku-style URLs say postgres://; SQLAlchemy 2.1 would also pick psycopg 3 for a bare
    # postgresql://, while our driver is psycopg2.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def _instance_secret(name, make):
    """A per-checkout secret for development, generated once into instance/.

    Development must work with nothing configured, yet no key may live in code;
    a file next to the SQLite database keeps it stable across restarts.
    """
    path = INSTANCE_DIR / name
    if not path.exists():
        INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def _fernet_key():
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _host_list(raw):
    """TRUSTED_HOSTS: comma-separated host names (a leading dot trusts subdomains); None when unset."""
    hosts = [h.strip() for h in (raw or "").split(",") if h.strip()]
    return hosts or None


MAKE_SECRET_KEY = 'python -c "import secrets; print(secrets.token_hex(32))"'
MAKE_FERNET_KEY = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'


def key_problems(secret_key, encryption_key):
    """What is wrong with the boot keys for production, one sentence each saying how to make a good one."""
    from cryptography.fernet import Fernet

    problems = []
    if len((secret_key or "").encode()) < 32:
        problems.append(f"SECRET_KEY must be at least 32 bytes; make one with {MAKE_SECRET_KEY}")
    keys = [k.strip() for k in (encryption_key or "").split(",")]
    try:
        if not any(keys):
            raise ValueError
        for key in keys:
            Fernet(key.encode())
    except ValueError:
        problems.append("ENCRYPTION_KEY must be one or more Fernet keys, comma-separated, newest first; "
                        f"make one with {MAKE_FERNET_KEY}")
    return problems


class Config:
    SQLALCHEMY_DATABASE_URI = _database_url(f"sqlite:///{INSTANCE_DIR / 'neurapix.db'}")
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    REDIS_URL = os.environ.get("REDIS_URL") or None
    SECRET_KEY = os.environ.get("SECRET_KEY")
    # Comma-separated Fernet keys, newest first: MultiFernet decrypts with any, encrypts with the first.
    ENCRYPTION_KEY = os.environ.get("ENCRYPTION_KEY")
    STORAGE_DIR = os.environ.get("STORAGE_DIR") or str(INSTANCE_DIR / "storage")
    # Upload guard rails: no request body over this size; no image over this many pixels (decompression bombs).
    MAX_CONTENT_LENGTH = 64 * 1024 * 1024
    MAX_IMAGE_PIXELS = int(os.environ.get("MAX_IMAGE_PIXELS", 40_000_000))
    # A running job's lease = timeout × attempts + this; past it the reaper treats the worker as dead.
    JOB_LEASE_GRACE_SECONDS = float(os.environ.get("JOB_LEASE_GRACE_SECONDS", 60))
    REAPER_INTERVAL_SECONDS = float(os.environ.get("REAPER_INTERVAL_SECONDS", 30))
    # Status checks of a remote job back off up to this many seconds apart; a waiting job's lease is this + grace.
    MAX_POLL_DELAY_SECONDS = float(os.environ.get("MAX_POLL_DELAY_SECONDS", 30))
    # Base of the exponential pause between provider retries (1×, 2×, 4×…, capped at 10×).
    RETRY_BACKOFF_SECONDS = float(os.environ.get("RETRY_BACKOFF_SECONDS", 1))
    # Payment gateways' API hosts come from the environment only: the keys follow them, so no admin setting
    # may move them. PayPal's default is its sandbox or live host, following the PayPal mode setting.
    STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE") or "https://api.stripe.com"
    PAYPAL_API_BASE = os.environ.get("PAYPAL_API_BASE") or None

    # Login throttling (Flask-Limiter): per client IP on the login and sign-up forms, and failed attempts per
    # account before it is locked (until the window passes or an admin lifts the lockout).
    RATELIMIT_STORAGE_URI = REDIS_URL or "memory://"
    RATELIMIT_HEADERS_ENABLED = False
    LOGIN_IP_LIMIT = os.environ.get("LOGIN_IP_LIMIT", "30 per minute")
    LOGIN_ACCOUNT_LIMIT = os.environ.get("LOGIN_ACCOUNT_LIMIT", "5 per 15 minutes")
    # Showcase reports per client IP (Flask-Limiter, same storage as the login limits).
    SHOWCASE_REPORT_LIMIT = os.environ.get("SHOWCASE_REPORT_LIMIT", "5 per hour")

    # Pauses before each retry of an email the SMTP server did not take (seconds; one retry per entry).
    MAIL_RETRY_SECONDS = [int(s) for s in os.environ.get("MAIL_RETRY_SECONDS", "30,300,1800").split(",") if s.strip()]

    # Pauses before each retry of a client app's webhook: exponential, about 23 hours in all (9 attempts).
    WEBHOOK_RETRY_SECONDS = [int(s) for s in os.environ.get(
        "WEBHOOK_RETRY_SECONDS", "10,60,300,1800,3600,10800,21600,43200").split(",") if s.strip()]

    # How often scheduler.py asks whether the daily backup is due (its time of day is a runtime setting).
    BACKUP_TICK_SECONDS = int(os.environ.get("BACKUP_TICK_SECONDS", 60))
    # How often scheduler.py refreshes the dashboard's rollups, flushes page view counters and checks alerts.
    ANALYTICS_TICK_SECONDS = int(os.environ.get("ANALYTICS_TICK_SECONDS", 60))
    # Without Redis (make run): page views counted in memory reach the database this often.
    PAGEVIEW_FLUSH_SECONDS = int(os.environ.get("PAGEVIEW_FLUSH_SECONDS", 30))

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    WTF_CSRF_TIME_LIMIT = None  # token lives as long as the session
    FLASK_ADMIN_SWATCH = "flatly"
    # How many reverse proxies (load balancers) stand in front of the app: their X-Forwarded-For/-Proto/-Host
    # entries are believed, no others. 0 = none (the client connects directly); Heroku = 1.
    TRUSTED_PROXIES = int(os.environ.get("TRUSTED_PROXIES") or 0)
    TRUSTED_HOSTS = _host_list(os.environ.get("TRUSTED_HOSTS"))
    # Production: plain-http requests are redirected to https and answers carry HSTS.
    FORCE_HTTPS = False

    @classmethod
    def prepare(cls):
        """Called by create_app before use: fills what is derived, or refuses to start."""


class DevelopmentConfig(Config):
    @classmethod
    def prepare(cls):
        cls.SECRET_KEY = cls.SECRET_KEY or _instance_secret("dev-secret-key", lambda: secrets.token_hex(32))
        cls.ENCRYPTION_KEY = cls.ENCRYPTION_KEY or _instance_secret("dev-encryption-key", _fernet_key)


class TestingConfig(Config):
    TESTING = True
    SECRET_KEY = "testing-only-secret"
    MAIL_RETRY_SECONDS = [0, 0]
    WEBHOOK_RETRY_SECONDS = [0, 0]

    @classmethod
    def prepare(cls):
        # The suite makes a throwaway PostgreSQL database and names it here.
        cls.SQLALCHEMY_DATABASE_URI = _database_url(os.environ.get("TEST_DATABASE_URL") or cls.SQLALCHEMY_DATABASE_URI)
        # Tests that start worker processes export ENCRYPTION_KEY so both sides share it.
        cls.ENCRYPTION_KEY = cls.ENCRYPTION_KEY or _fernet_key()


class ProductionConfig(Config):
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True
    PREFERRED_URL_SCHEME = "https"
    FORCE_HTTPS = True

    @classmethod
    def prepare(cls):
        missing = [name for name in ("SECRET_KEY", "ENCRYPTION_KEY") if not getattr(cls, name)]
        if missing:
            raise RuntimeError(
                "Neurapix refuses to start in production without "
                + " and ".join(missing)
                + ": set them in the environment (see .env.example)."
            )
        problems = key_problems(cls.SECRET_KEY, cls.ENCRYPTION_KEY)
        if problems:
            raise RuntimeError("Neurapix refuses to start in production: " + "; ".join(problems) + ".")


configs = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}
