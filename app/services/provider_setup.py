"""Turning provider rows and a function's overrides into callable configurations: merge, schema validation,
secrets (decrypted only here; stored encrypted), the function's fallback chain and how long a step may take.

Used by the job lifecycle, Test provider and the admin forms alike, so each rule is written once.
"""
import functools

import jsonschema
import sqlalchemy as sa
from flask import current_app

from app.extensions import db
from app.models import Provider
from app.providers import registry
from app.providers.base import ProviderError, request_timeout
from app.services.crypto import decrypt_json, encrypt_json, merge_secrets


@functools.lru_cache(maxsize=None)
def _validator(plugin):
    """One compiled validator per plugin class: checking the schema itself on every job is slow."""
    cls = jsonschema.validators.validator_for(plugin.config_schema)
    cls.check_schema(plugin.config_schema)
    return cls(plugin.config_schema, format_checker=cls.FORMAT_CHECKER)


def config_errors(plugin, config):
    """Every way `config` breaks the plugin's schema, as "field: message", most relevant first."""
    errors = sorted(_validator(plugin).iter_errors(config), key=jsonschema.exceptions.relevance)
    return [f"{'/'.join(str(p) for p in e.absolute_path) or 'config'}: {e.message}" for e in errors]


def merged_config(provider, overrides, secrets=None):
    """Provider defaults ⊕ provider config ⊕ the function's overrides (params merged), plus secrets
    (decrypted from the provider unless given)."""
    plugin = registry.plugin_class(provider.key)
    base, extra = provider.config or {}, overrides or {}
    merged = {**plugin.defaults(), **base, **extra}
    merged["params"] = {**base.get("params", {}), **extra.get("params", {})}
    merged.update(decrypt_json(provider.secrets) if secrets is None else secrets)
    return merged


def effective_config(provider, overrides, secrets=None):
    """merged_config, validated against the plugin's schema; ProviderError names the first bad field."""
    plugin = registry.plugin_class(provider.key)
    merged = merged_config(provider, overrides, secrets)
    errors = config_errors(plugin, merged)
    if errors:
        raise ProviderError(f"Invalid {plugin.name} config at {errors[0]}")
    return merged


def unsaved_config(key, config, secrets):
    """The merged config of a provider as edited on screen, not saved: plugin defaults ⊕ config ⊕ secrets."""
    return merged_config(Provider(key=key, config=config), {}, secrets)


def secrets_after_edit(stored, same_plugin, entered, cleared=()):
    """The secrets a provider keeps after an edit (or a Test provider call uses): the stored ones only while the
    plugin stays the same, since secrets belong to the plugin they were entered for (an http plugin could
    otherwise send them anywhere its config says); an entered value replaces, a blank keeps, a cleared name
    goes."""
    return merge_secrets(stored if same_plugin else {}, entered, cleared)


def sealed(secrets):
    """Secrets as stored on the provider row: encrypted, or nothing at all."""
    return encrypt_json(secrets) if secrets else None


def _with_output_format(fn, provider, config):
    """Plugins that encode the result themselves use the function's output format and quality."""
    fields = registry.plugin_class(provider.key).config_schema["properties"]
    if "output_format" in fields:
        config["output_format"] = fn.output_format or "PNG"
    if "output_quality" in fields:
        config["output_quality"] = fn.output_quality or 90
    return config


def chain(fn):
    """The providers a job of `fn` may use, in order: the primary, then each enabled fallback.

    Returns ([(provider, config)], [problem]); a step whose provider is disabled is left out and one
    whose config is invalid is reported as a problem, so the chain still runs on the rest."""
    links = [(fn.provider, fn.provider_config)] + [(fb.provider, fb.provider_config) for fb in fn.fallbacks]
    usable, problems = [], []
    for provider, overrides in links:
        if provider is None or not provider.enabled:
            continue
        try:
            usable.append((provider, _with_output_format(fn, provider, effective_config(provider, overrides))))
        except (ProviderError, registry.UnknownProvider) as exc:
            problems.append(f"{provider.name}: {exc}")
    return usable, problems


def attempt_seconds(plugin, config):
    """How long one step of a job keeps a worker busy before it is presumed dead: the whole call for a
    provider answering in one call, only the submit request for a remote one (the wait holds no worker)."""
    seconds = request_timeout(config) if plugin.is_remote(config) else float(config.get("timeout", 300))
    return seconds + current_app.config["JOB_LEASE_GRACE_SECONDS"]


def store_secret(provider_id, name, value):
    """Keep one more secret on a provider (e.g. a webhook signing key fetched from its API), encrypted, in the
    caller's transaction."""
    stored = db.session.scalar(sa.select(Provider.secrets).where(Provider.id == provider_id))
    db.session.execute(sa.update(Provider).where(Provider.id == provider_id)
                       .values(secrets=sealed({**decrypt_json(stored), name: value})))
