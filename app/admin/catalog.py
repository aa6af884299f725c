"""Admin views for the catalog: AI functions and the providers that run them."""
import json

from flask_admin.form import Select2Widget
from markupsafe import Markup
from wtforms import SelectField, SelectMultipleField, TextAreaField
from wtforms.validators import InputRequired, ValidationError

from app.admin.base import RoleModelView
from app.models.catalog import IMAGE_FORMATS
from app.providers import registry
from app.services.crypto import MASK, decrypt_json, encrypt_json, mask


def _megabytes(_view, _context, model, _name):
    return f"{model.max_file_size / 1048576:.1f} MB"


class AIFunctionView(RoleModelView):
    column_list = ("key", "name", "price_per_use", "enabled", "provider", "priority", "daily_limit",
                   "max_file_size", "updated_at")
    column_searchable_list = ("key", "name")
    column_filters = ("enabled", "provider.name", "price_per_use", "priority", "created_at")
    column_editable_list = ("enabled", "price_per_use", "priority")
    column_sortable_list = ("key", "name", "price_per_use", "enabled", "priority", "updated_at")
    column_default_sort = [("priority", True), ("name", False)]
    column_formatters = {"max_file_size": _megabytes}
    column_labels = {"price_per_use": "Price (credits)", "max_file_size": "Max file size"}
    form_columns = ("key", "name", "description", "enabled", "provider", "provider_config", "price_per_use",
                    "max_file_size", "allowed_formats", "priority", "daily_limit")
    form_overrides = {"allowed_formats": SelectMultipleField}
    form_args = {
        "allowed_formats": {"choices": [(f, f) for f in IMAGE_FORMATS], "widget": Select2Widget(multiple=True),
                            "validators": [InputRequired("Pick at least one format.")],
                            "description": "Formats are checked by decoding the image, not by file name."},
        "key": {"description": "Stable identifier used in URLs (/f/<key>) and the API, e.g. enhance, upscale."},
        "max_file_size": {"description": "In bytes: 10485760 is 10 MB."},
        "priority": {"description": "Higher comes first on the site; 50 and above use the high-priority queue, "
                                    "below 0 the low one."},
        "daily_limit": {"description": "Uses per customer per day. Leave empty for no limit."},
        "provider_config": {"description": "JSON merged over the provider's config: model, timeout, retries, params."},
    }


class SecretsField(TextAreaField):
    """A JSON object of secrets, shown masked; a masked value sent back keeps the stored one."""

    def process_formdata(self, valuelist):
        raw = (valuelist[0] if valuelist else "").strip()
        try:
            self.data = json.loads(raw) if raw else {}
        except json.JSONDecodeError as exc:
            self.data = None
            raise ValueError(f"Secrets must be a JSON object: {exc.msg} at line {exc.lineno}.") from exc

    def pre_validate(self, form):
        if not isinstance(self.data, dict) or not all(isinstance(v, str) for v in self.data.values()):
            raise ValidationError('Secrets must be a JSON object of strings, e.g. {"api_token": "…"}.')

    def _value(self):
        if isinstance(self.data, dict):
            return json.dumps(self.data, indent=2, ensure_ascii=False)
        return self.data or ""


class ProviderView(RoleModelView):
    column_list = ("name", "key", "enabled", "last_status", "last_latency_ms", "last_checked_at", "updated_at")
    column_searchable_list = ("name", "key")
    column_filters = ("key", "enabled", "last_status", "created_at")
    column_editable_list = ("enabled",)
    column_labels = {"key": "Plugin", "last_latency_ms": "Latency (ms)"}
    column_formatters_detail = {
        "config": lambda _v, _c, m, _n: Markup("<pre>{}</pre>").format(json.dumps(m.config, indent=2)),
    }
    form_columns = ("name", "key", "enabled", "config", "secret_values")
    form_extra_fields = {
        "secret_values": SecretsField(
            "Secrets",
            description=f"JSON object of API tokens, stored encrypted and shown masked. "
                        f"Keep a masked value ({MASK}…) to leave it unchanged; remove a key to delete it.",
        )
    }
    form_args = {
        "config": {"description": "JSON: endpoint, model, timeout, retries, default params."},
    }

    def scaffold_form(self):
        form = super().scaffold_form()
        # The plugin keys registered in code, so a typo cannot bind a provider to nothing.
        form.key = SelectField("Plugin", choices=[(k, registry.plugin_class(k).name + f" ({k})")
                                                  for k in registry.available()],
                               description="Which plugin runs this provider.")
        return form

    def on_form_prefill(self, form, id):
        stored = decrypt_json(self.get_one(id).secrets)
        form.secret_values.data = {k: mask(v) for k, v in stored.items()}

    def on_model_change(self, form, model, is_created):
        if "secret_values" in form:  # absent from the list view's inline "enabled" toggle
            self._save_secrets(model, form.secret_values.data or {}, is_created)
        super().on_model_change(form, model, is_created)

    @staticmethod
    def _save_secrets(model, submitted, is_created):
        stored = {} if is_created else decrypt_json(model.secrets)
        merged = {k: (stored.get(k, "") if v.startswith(MASK) else v) for k, v in submitted.items()}
        merged = {k: v for k, v in merged.items() if v}
        if merged != stored:
            model.secrets = encrypt_json(merged) if merged else None
