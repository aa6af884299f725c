"""The catalog's rules: which functions customers may see and buy, and moving a function's setup
between servers (export, import, clone) without its provider's secrets."""
import json

import sqlalchemy as sa
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models import AIFunction, FunctionFallback, Plan, Provider
from app.providers import registry
from app.services import audit, parameters


def _visible():
    # A function is offered only while it is enabled and some provider of its chain (the primary or a
    # fallback) is enabled to run it.
    primary_on = sa.exists().where(Provider.id == AIFunction.provider_id, Provider.enabled.is_(True))
    fallback_on = (
        sa.exists().where(FunctionFallback.function_id == AIFunction.id)
        .where(Provider.id == FunctionFallback.provider_id, Provider.enabled.is_(True))
    )
    return sa.select(AIFunction).where(AIFunction.enabled.is_(True), sa.or_(primary_on, fallback_on))


def visible_functions():
    return db.session.scalars(_visible().order_by(AIFunction.priority.desc(), AIFunction.name)).all()


def visible_function(key):
    # With its fallback chain in the same query: a submit needs it next.
    return db.session.scalars(_visible().where(AIFunction.key == key).options(
        joinedload(AIFunction.fallbacks).joinedload(FunctionFallback.provider))).unique().first()


def plan_offered(user, plan):
    """Public plans are for everyone; a hidden (B2B) plan only for a user an admin assigned it to."""
    return plan is not None and (not plan.hidden or (user is not None and user.plan_id == plan.id))


def plans_for(user):
    """The plans a visitor (None when anonymous) may see and buy: the public ones, plus a hidden plan an
    admin assigned to them."""
    offered = Plan.hidden.is_(False) if user is None else sa.or_(Plan.hidden.is_(False), Plan.id == user.plan_id)
    return db.session.scalars(sa.select(Plan).where(offered).order_by(Plan.sort_order, Plan.price)).all()


SECRET_INPUTS = "the secret inputs below"
PROVIDER_SECRETS = "the provider's secret inputs (Catalog → Providers)"


def credential_message(plugin, config, where):
    """Why a config JSON may not be saved because it holds credentials in clear, or None. `where` names the
    secret inputs the owner should use instead."""
    fields = plugin.credential_fields(config)
    if not fields:
        return None
    return (f"{', '.join(fields[:5])}: looks like a credential, and config JSON is stored and shown in plain "
            f"text. Put it in {where} (stored encrypted) and refer to it as {{{{secret.NAME}}}} in templates.")


class CatalogImportError(ValueError):
    """A function file that cannot be imported; the message says what to fix."""


EXPORTED_FIELDS = ("key", "name", "description", "price_per_use", "enabled", "provider_config", "max_file_size",
                   "allowed_formats", "priority", "daily_limit", "output_format", "output_quality", "parameters")
OUTPUT_FORMATS = ("PNG", "WEBP", "JPEG")


def export_function(fn):
    """A function's setup as plain JSON data. Providers are named, never embedded: no secrets leave."""
    data = {field: getattr(fn, field) for field in EXPORTED_FIELDS}
    data["provider"] = fn.provider.name if fn.provider else None
    data["fallbacks"] = [{"position": fb.position, "provider": fb.provider.name, "provider_config": fb.provider_config}
                         for fb in fn.fallbacks]
    return {"neurapix_function": 1, **data}


def _provider_named(name):
    provider = db.session.scalars(sa.select(Provider).where(Provider.name == name)).first()
    if provider is None:
        raise CatalogImportError(f"No provider named {name!r} here: create it first, or edit the file.")
    return provider


def import_function(data, actor=None):
    """Create or update (by key) a function from export_function's data, audited and committed.
    Returns (function, created)."""
    if not isinstance(data, dict) or data.get("neurapix_function") != 1:
        raise CatalogImportError("This is not a Neurapix function export.")
    missing = [f for f in ("key", "name", "provider") if not data.get(f)]
    if missing:
        raise CatalogImportError(f"The file is missing: {', '.join(missing)}.")
    if data.get("output_format", "PNG") not in OUTPUT_FORMATS:
        raise CatalogImportError(f"output_format must be one of {', '.join(OUTPUT_FORMATS)}.")
    if problems := parameters.definition_errors(data.get("parameters")):
        raise CatalogImportError("The parameters are not valid: " + "; ".join(parameters.describe(problems)[:5]))
    quality = data.get("output_quality", 90)
    if not isinstance(quality, int) or isinstance(quality, bool) or not 1 <= quality <= 100:
        raise CatalogImportError("output_quality must be a whole number from 1 to 100.")
    fn = db.session.scalars(sa.select(AIFunction).where(AIFunction.key == data["key"])).first()
    created = fn is None
    if created:
        fn = AIFunction(key=data["key"])
        db.session.add(fn)
    for field in EXPORTED_FIELDS[1:]:
        if field in data:
            setattr(fn, field, data[field])
    fn.provider = _provider_named(data["provider"])
    fn.fallbacks = [FunctionFallback(position=step.get("position", i), provider=_provider_named(step["provider"]),
                                     provider_config=step.get("provider_config") or {})
                    for i, step in enumerate(data.get("fallbacks") or [], 1)]
    for provider, config in [(fn.provider, fn.provider_config)] + [(f.provider, f.provider_config)
                                                                    for f in fn.fallbacks]:
        leak = credential_message(registry.plugin_class(provider.key), config, PROVIDER_SECRETS)
        if leak:
            raise CatalogImportError(f"{provider.name}: {leak}")
    db.session.flush()
    audit.record("import", "AIFunction", fn.id, new=audit.snapshot(fn), actor=actor)
    db.session.commit()
    return fn, created


def copy_value(value):
    # JSON columns (parameters, provider_config) must not share one object between two rows.
    return json.loads(json.dumps(value)) if isinstance(value, (dict, list)) else value


def clone_function(fn, actor=None):
    """A disabled copy of `fn` (fallbacks included) under the first free key like "<key>-copy"; audited and
    committed."""
    taken = set(db.session.scalars(sa.select(AIFunction.key).where(AIFunction.key.like(f"{fn.key}-copy%"))))
    key = next(k for k in (f"{fn.key}-copy" + (f"-{n}" if n else "") for n in range(len(taken) + 1))
               if k not in taken)
    copy = AIFunction(**{f: copy_value(getattr(fn, f)) for f in EXPORTED_FIELDS if f != "key"}, key=key,
                      provider_id=fn.provider_id)
    copy.enabled, copy.name = False, f"{fn.name} (copy)"
    copy.fallbacks = [FunctionFallback(position=fb.position, provider_id=fb.provider_id,
                                       provider_config=dict(fb.provider_config or {})) for fb in fn.fallbacks]
    db.session.add(copy)
    db.session.flush()
    audit.record("clone", "AIFunction", copy.id, new=audit.snapshot(copy), actor=actor)
    db.session.commit()
    return copy
