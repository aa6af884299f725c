"""How the admin shows values people read: times in the owner's timezone, sizes in KB/MB, money with its currency
and statuses as badges. RoleModelView applies them by column type and name, so every view gets them for free.

Exports keep stored values (see RoleModelView); these are for screens only. Babel does the locale work.
"""
from datetime import date, datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, get_currency_precision
from flask_admin.model import typefmt
from markupsafe import Markup

from app.services import settings

LOCALE = "en"
DATETIME_PATTERN = "d MMM y, HH:mm"

# Status words → a badge tone (css/admin.css: each tone has 4.5:1 contrast or better, light and dark).
TONES = {
    "done": "ok", "succeeded": "ok", "paid": "ok", "sent": "ok", "ok": "ok",
    "failed": "bad",
    "queued": "idle", "pending": "idle", "cancelled": "idle",
    "processing": "busy", "submitting": "busy", "waiting": "busy", "fetching": "busy", "running": "busy",
    "refunded": "warn", "review": "warn",
}
LABELS = {"review": "needs review"}


def owner_zone():
    """The owner's timezone (Settings → Site → Timezone), UTC when unset."""
    try:
        return ZoneInfo(settings.get("site.timezone") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc


def local_time(value):
    """A timestamp as people read it, in the owner's timezone; the exact UTC time on hover."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)  # stored naive on SQLite: always UTC
    local = value.astimezone(owner_zone())
    # The zone's own abbreviation (CEST, EDT, UTC; "+04" where it has none), as people see it on clocks.
    shown = f"{format_datetime(local, DATETIME_PATTERN, tzinfo=local.tzinfo, locale=LOCALE)} {local.tzname()}"
    exact = value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}" title="{}">{}</time>').format(value.isoformat(), exact, shown)


def file_size(value):
    """Bytes in KB, MB or GB (1024-based, as operating systems show file sizes)."""
    if value is None:
        return ""
    amount = float(value)
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(amount) < 1024 or unit == "GB":
            break
        amount /= 1024
    if unit == "bytes":
        return f"{int(amount)} bytes"
    return f"{amount:,.1f} {unit}".replace(".0 ", " ")


def money(minor_units, currency):
    """An amount stored in minor units (cents) with its currency, e.g. $9.99, €5.00, ¥500."""
    if minor_units is None:
        return ""
    code = (currency or "USD").upper()
    return format_currency(Decimal(minor_units).scaleb(-get_currency_precision(code)), code, locale=LOCALE)


def badge(text, tone):
    return Markup('<span class="np-badge np-badge--{}">{}</span>').format(tone, text)


def status_badge(value):
    if not value:
        return ""
    return badge(LABELS.get(value, value), TONES.get(value, "idle"))


def banned_badge(value):
    return badge("banned", "bad") if value else ""


# --- Flask-Admin glue: (view, context, model, name) column formatters and (view, value, name) type formatters ---


def _datetime_type(_view, value, _name):
    return local_time(value)


def _date_type(_view, value, _name):
    return format_date(value, "d MMM y", locale=LOCALE)


TYPE_FORMATTERS = {**typefmt.BASE_FORMATTERS, datetime: _datetime_type, date: _date_type}
DETAIL_TYPE_FORMATTERS = {**typefmt.DETAIL_FORMATTERS, datetime: _datetime_type, date: _date_type}


def _column(fn):
    return lambda _view, _context, model, name: fn(getattr(model, name))


def _money_column(_view, _context, model, name):
    return money(getattr(model, name), getattr(model, "currency", None))


def is_size(name):
    return name.endswith(("_size", "_bytes")) or name == "size"


def for_model(model):
    """Column formatters by column name for a model: statuses, the banned flag, sizes and money."""
    columns = {attr.key for attr in sa.inspect(model).column_attrs}
    found = {}
    for name in columns:
        if name == "status":
            found[name] = _column(status_badge)
        elif name == "is_banned":
            found[name] = _column(banned_badge)
        elif is_size(name):
            found[name] = _column(file_size)
        elif name in ("amount", "price") and "currency" in columns:
            found[name] = _money_column
    return found
