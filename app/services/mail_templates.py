"""Email templates the owner edits in the admin, per message and language, over the shipped file templates.

Owner-written templates are untrusted code: they are rendered in jinja2's ImmutableSandboxedEnvironment (HTML
autoescaped) and see only the plain values listed in VARIABLES, never model objects (whose methods could write to
the database). A template is checked when it is saved (syntax, unknown variables, underscore attributes, a render
with sample values), so a broken one is refused with the reason and nothing changes. Sending picks the customer's
language, then the site's default language, then the shipped files (services/mail.py).
"""
import logging
from datetime import date, datetime, timezone
from decimal import Decimal
from types import SimpleNamespace
from typing import NamedTuple

import sqlalchemy as sa
from flask import current_app
from jinja2 import FunctionLoader, StrictUndefined, TemplateNotFound, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.extensions import db
from app.models import EmailLog, EmailTemplate
from app.models.types import utcnow
from app.services import audit, cms, mail, settings

log = logging.getLogger("neurapix.mail")

PARTS = ("subject", "text", "html")
# The shipped file of each part: app/templates/email/[<language>/]<name>.<suffix>
FILE_SUFFIX = {"subject": "subject.txt", "text": "txt", "html": "html"}
MAX_LENGTH = {"subject": 500, "text": 100_000, "html": 200_000}
MAX_OUTPUT = 1_000_000
LANGUAGE = cms.LANGUAGE
LAYOUT = "email/_layout.html"


class Var(NamedTuple):
    description: str
    sample: object


class Obj(NamedTuple):
    """A record offered as a few plain fields (user.email), never as the model object itself."""
    description: str
    fields: dict


class TemplateProblem(ValueError):
    """What is wrong with an edited template, per part (subject, text, html); nothing was saved or sent."""

    def __init__(self, errors):
        super().__init__("; ".join(f"{part}: {error}" for part, error in errors.items()))
        self.errors = errors


_SAMPLE_URL = "https://www.example.com"
USER = Obj("The customer", {"email": Var("The customer's email address", "ada@example.com")})
PAYMENT = Obj("The payment", {"id": Var("The payment's number", 1042),
                              "provider": Var("How it was paid: stripe, paypal or manual", "stripe"),
                              "credits": Var("Credits the payment bought", 500),
                              "currency": Var("The payment's currency code", "EUR")})
_PAYMENT_VARIABLES = {
    "user": USER, "payment": PAYMENT, "amount": Var("Amount and currency", "49.00 EUR"),
    "plan": Var("The plan's name, or Credits", "Pro monthly"),
    "account_url": Var("The customer's account page", f"{_SAMPLE_URL}/account"),
    "pricing_url": Var("The pricing page", f"{_SAMPLE_URL}/pricing"),
    "subscription_end": Var("When the subscription renews (a date, or empty)",
                            datetime(2027, 1, 31, tzinfo=timezone.utc)),
}
# What each registered message offers its template, with a sample value for previews and save-time checks.
VARIABLES = {
    "verify_email": {"user": USER, "link": Var("The confirmation link", f"{_SAMPLE_URL}/verify-email/sample-token"),
                     "days": Var("Days the link works", 7)},
    "password_reset": {"user": USER, "link": Var("The reset link", f"{_SAMPLE_URL}/reset-password/sample-token"),
                       "hours": Var("Hours the link works", 2)},
    "change_email": {"user": USER, "new_email": Var("The address being confirmed", "ada.new@example.com"),
                     "link": Var("The confirmation link", f"{_SAMPLE_URL}/confirm-email/sample-token"),
                     "hours": Var("Hours the link works", 24)},
    "ban_notice": {"user": USER, "reason": Var("The reason staff gave", "Repeated chargebacks")},
    "job_failed": {"user": USER, "job": Obj("The job", {"id": Var("The job's number", 318)}),
                   "notice": Var("What went wrong and what was refunded, in the customer's words",
                                 "Job #318 failed: the provider did not answer. Your 5 credits were refunded."),
                   "job_url": Var("The job's page", f"{_SAMPLE_URL}/jobs/318"),
                   "preferences_url": Var("Where the customer turns these emails off", f"{_SAMPLE_URL}/account")},
    "payment_receipt": _PAYMENT_VARIABLES,
    "payment_failed": _PAYMENT_VARIABLES,
    "refund": {**_PAYMENT_VARIABLES, "amount": Var("The amount refunded", "49.00"),
               "credits": Var("Credits taken back (0 when none)", 500)},
}
COMMON = {"site_name": Var("The site name (Settings → Site)", "Neurapix"),
          "support_email": Var("The support address (Settings → Site), or empty", "support@example.com")}


def offered(name):
    """The variables the message `name` offers: its own and the ones every message has."""
    return {**VARIABLES.get(name, {}), **COMMON}


# --- the sandbox ---

def _layout(template_name):
    # The one template an owner's HTML may extend: the shipped layout (any other name is not found).
    if template_name != LAYOUT:
        return None
    return current_app.jinja_env.loader.get_source(current_app.jinja_env, LAYOUT)[0]


_ENVIRONMENTS = {
    html: ImmutableSandboxedEnvironment(loader=FunctionLoader(_layout), autoescape=html, undefined=StrictUndefined)
    for html in (False, True)
}


def _env(part):
    return _ENVIRONMENTS[part == "html"]


def _plain(value):
    if value is None or isinstance(value, (str, int, float, bool, date, Decimal)):
        return value
    return str(value)


def _project(name, context):
    """Only the offered variables, as plain values: what a sandboxed template may see."""
    shown = {}
    for key, spec in offered(name).items():
        value = context.get(key)
        if isinstance(spec, Obj):
            shown[key] = None if value is None else {f: _plain(getattr(value, f, None)) for f in spec.fields}
        else:
            shown[key] = _plain(value)
    return shown


def sample_context(name):
    """Sample values shaped like a builder's context (records as objects), for previews and save-time checks."""
    site = {"site_name": settings.get("site.name"), "support_email": settings.get("site.support_email")}
    return {**{key: (SimpleNamespace(**{f: v.sample for f, v in spec.fields.items()}) if isinstance(spec, Obj)
                     else spec.sample) for key, spec in offered(name).items()}, **site}


def _render_part(part, source, context):
    # Streamed, so a template that loops into a huge message stops at the cap instead of filling the memory.
    rendered, size = [], 0
    for chunk in _env(part).from_string(source).generate(context):
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise ValueError(f"the rendered {part} is longer than {MAX_OUTPUT:,} characters")
        rendered.append(chunk)
    rendered = "".join(rendered)
    return " ".join(rendered.split()) if part == "subject" else rendered


def _static_problem(name, part, source):
    """Syntax, underscore attributes and unknown variables, found without running the template."""
    env = _env(part)
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        return f"line {exc.lineno}: {exc.message}"
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        attribute = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(attribute, str) and attribute.startswith("_"):
            return (f"line {node.lineno}: \"{attribute}\" is not allowed: templates may only use the variables "
                    "listed beside the editor.")
    unknown = meta.find_undeclared_variables(tree) - set(offered(name)) - set(env.globals)
    if unknown:
        return (f"unknown variable(s) {', '.join(sorted(unknown))}; this message offers "
                f"{', '.join(sorted(offered(name)))}.")
    return None


def check(name, values):
    """Errors per part for an edited template ({} when it may be saved); every part is rendered once with the
    sample values, so a mistake that only shows when the template runs is refused too."""
    errors = {}
    context = _project(name, sample_context(name))
    for part in PARTS:
        source = values.get(part) or ""
        if part != "html" and not source.strip():
            errors[part] = "This part may not be empty."
            continue
        if len(source) > MAX_LENGTH[part]:
            errors[part] = f"At most {MAX_LENGTH[part]:,} characters."
            continue
        problem = _static_problem(name, part, source)
        if problem is None:
            try:
                _render_part(part, source, context)
            except Exception as exc:  # noqa: BLE001 - owner code may fail in any way; the owner reads why
                problem = f"it fails when rendered: {type(exc).__name__}: {exc}"
        if problem:
            errors[part] = problem
    return errors


def render(name, values, context):
    """Subject, text and HTML of an edited template with `context` (the builder's); raises what the template
    raised."""
    shown = _project(name, context)
    return {part: _render_part(part, values.get(part) or "", shown) if values.get(part) else "" for part in PARTS}


def preview(name, values):
    """The template rendered with sample values; TemplateProblem when it may not be saved."""
    errors = check(name, values)
    if errors:
        raise TemplateProblem(errors)
    return render(name, values, sample_context(name))


# --- reading and choosing ---

def _known(name, language):
    if name not in mail.templates():
        raise ValueError(f"There is no email called {name!r}.")
    if not LANGUAGE.fullmatch(language or ""):
        raise ValueError("Use a language code such as en, de or pt-br.")


def default_source(name, language):
    """The shipped file template of each part (the language's own files first), as the editor's default."""
    env = current_app.jinja_env
    found = {}
    for part, suffix in FILE_SUFFIX.items():
        found[part] = ""
        for candidate in (f"email/{language}/{name}.{suffix}", f"email/{name}.{suffix}"):
            try:
                found[part] = env.loader.get_source(env, candidate)[0].strip("\n")
                break
            except TemplateNotFound:
                continue
    return found


def find(name, language):
    return db.session.scalars(sa.select(EmailTemplate).filter_by(name=name, language=language)).first()


def current(name, language):
    """What the editor starts from: the owner's row, else the shipped files. Returns (values, row or None)."""
    _known(name, language)
    row = find(name, language)
    if row is None:
        return default_source(name, language), None
    return {part: getattr(row, part) for part in PARTS}, row


def overview():
    """Every registered message with the languages the owner customised (and when), for the admin list."""
    rows = db.session.scalars(sa.select(EmailTemplate).order_by(EmailTemplate.language)).all()
    custom = {}
    for row in rows:
        custom.setdefault(row.name, []).append(row)
    return [{"name": name, "variables": offered(name), "custom": custom.get(name, [])} for name in mail.templates()]


def languages_for(user):
    """The customer's language when they have one, then the site's default language."""
    default = settings.get("site.default_language")
    chosen = getattr(user, "language", None)
    return [chosen, default] if chosen and chosen != default else [default]


def render_custom(name, languages, context):
    """The owner's template for the first of `languages` that has one, rendered; None when none does (the
    shipped files are used). A template that fails when sent is skipped, so the customer still gets the next."""
    rows = {row.language: row for row in db.session.scalars(
        sa.select(EmailTemplate).where(EmailTemplate.name == name, EmailTemplate.language.in_(languages)))}
    for language in languages:
        row = rows.get(language)
        if row is None:
            continue
        try:
            return render(name, {part: getattr(row, part) for part in PARTS}, context)
        except Exception as exc:  # noqa: BLE001 - owner code may fail in any way; the next template is used
            log.warning("email template %s (%s, %s) failed, falling back: %s", row.id, name, language,
                        type(exc).__name__)
    return None


# --- the owner's writes (each commits with its audit row) ---

def _values(values):
    return {part: (values.get(part) or "").replace("\r\n", "\n") for part in PARTS}


def save(actor, name, language, values):
    """Save the owner's template for one message and language; TemplateProblem (nothing saved) when it is
    broken. Returns the row."""
    _known(name, language)
    values = _values(values)
    errors = check(name, values)
    if errors:
        raise TemplateProblem(errors)
    row = find(name, language)
    created = row is None
    old = None if created else {part: getattr(row, part) for part in PARTS}
    if old == values:
        return row  # saved as it was: nothing to write or audit
    if created:
        row = EmailTemplate(name=name, language=language)
        db.session.add(row)
    for part in PARTS:
        setattr(row, part, values[part])
    row.updated_by_id, row.updated_at = actor.id, utcnow()
    db.session.flush()
    audit.record("create" if created else "update", "EmailTemplate", row.id, old=old,
                 new={"name": name, "language": language, **values}, actor=actor)
    db.session.commit()
    return row


def reset(actor, name, language):
    """Back to the shipped files for this message and language; False when it was not customised."""
    _known(name, language)
    row = find(name, language)
    if row is None:
        return False
    audit.record("email_template_reset", "EmailTemplate", row.id,
                 old={"name": name, "language": language, **{part: getattr(row, part) for part in PARTS}}, actor=actor)
    db.session.delete(row)
    db.session.commit()
    return True


def send_test(actor, name, language, values):
    """The edited (not necessarily saved) template with sample values, delivered now to the acting admin and
    logged like any send. Raises TemplateProblem or mail.MailError."""
    _known(name, language)
    rendered = preview(name, _values(values))
    row = EmailLog(to_address=actor.email, template=name, user_id=actor.id, params={"test": True, "language": language},
                   status="queued", attempts=1)
    db.session.add(row)
    audit.record("email_template_test", "EmailTemplate", None, new={"name": name, "language": language},
                 actor=actor)
    try:
        mail.deliver(actor.email, rendered["subject"], rendered["text"], rendered["html"] or None)
    except mail.MailError as exc:
        row.status, row.error = "failed", str(exc)
        db.session.commit()
        raise
    row.status, row.sent_at = "sent", utcnow()
    db.session.commit()
