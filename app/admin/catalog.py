"""Admin views for the catalog: AI functions (with fallback chains) and the providers that run them.

Configs are edited as JSON against each plugin's JSON Schema and validated on save; provider secrets
are separate masked inputs, stored encrypted. "Test" buttons call a provider for real (admin only).
"""
import json

import sqlalchemy as sa
from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_admin import expose
from flask_admin.actions import action
from flask_admin.form import JSONField, Select2Widget
from flask_admin.model.template import LinkRowAction
from markupsafe import Markup
from wtforms import BooleanField, PasswordField, SelectField, SelectMultipleField
from wtforms.validators import DataRequired, InputRequired, NumberRange, ValidationError

from app.admin.base import ADMIN, RoleModelView, current_role
from app.extensions import db
from app.models import AIFunction, FunctionFallback, Provider
from app.models.catalog import IMAGE_FORMATS
from app.providers import registry
from app.providers.base import ProviderError
from app.services import catalog, parameters, provider_checks, provider_setup
from app.services.crypto import decrypt_json, mask

SECRET = "secret__"


def _public_schema(key):
    """A plugin's schema without its secret fields (those have their own masked inputs)."""
    plugin = registry.plugin_class(key)
    schema = json.loads(json.dumps(plugin.config_schema))
    for name in plugin.secret_fields:
        schema["properties"].pop(name, None)
    return schema


def _secret_names():
    """Every secret field any plugin declares → the plugins that use it, for the provider form."""
    names = {}
    for key in registry.available():
        for name in registry.plugin_class(key).secret_fields:
            names.setdefault(name, []).append(registry.plugin_class(key).name)
    return names


def _secret_inputs(value_of):
    """(entered, cleared) from the provider form's secret inputs, each read through value_of(input name)."""
    names = _secret_names()
    return {n: value_of(SECRET + n) or "" for n in names}, {n for n in names if value_of(f"{SECRET}{n}__clear")}


def _form_secrets(form):
    return _secret_inputs(lambda name: form[name].data if name in form else None)


def _editor(field, schemas, source):
    """Turn a JSON textarea into the code editor, documenting the schema of the selected plugin."""
    field.render_kw = {**(field.render_kw or {}), "data-json-editor": "", "data-schemas": json.dumps(schemas),
                       "data-schema-source": source, "rows": 10}


def _json_object(_form, field):
    if field.data is not None and not isinstance(field.data, dict):
        raise ValidationError("The config must be a JSON object, e.g. {\"timeout\": 120}.")


class JSONListField(JSONField):
    """A JSON list, pretty-printed for editing; empty shows as [] (Flask-Admin's JSONField shows {})."""

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        return json.dumps(self.data or [], ensure_ascii=False, indent=2)


def _parameter_definition(_form, field):
    if field.data is None:
        field.data = []
    errors = parameters.definition_errors(field.data)
    if errors:
        raise ValidationError(" · ".join(parameters.describe(errors)[:8]))


def _schema_errors(key, merged):
    errors = provider_setup.config_errors(registry.plugin_class(key), merged)
    if errors:
        raise ValidationError(" · ".join(errors[:5]))


def _no_credentials(key, config, where):
    """Refuse config JSON that carries a credential in clear (it is stored and shown as plain text)."""
    message = catalog.credential_message(registry.plugin_class(key), config, where)
    if message:
        raise ValidationError(message)


class ToolsView(RoleModelView):
    """Edit pages with the JSON editor and a "Test" panel; the test endpoint is admin only."""

    create_template = "admin/catalog_create.html"
    edit_template = "admin/catalog_edit.html"
    tool_roles = ADMIN

    @property
    def can_use_tools(self):
        return current_role() in self.tool_roles

    def _require_tools(self):
        if not self.can_use_tools:
            abort(403)

    def test_result(self, provider, overrides=None, secrets=None, saved=None):
        outcome = provider_checks.run_test(provider, overrides, secrets)
        if saved is not None:
            provider_checks.record_health(saved, outcome)
        return jsonify(outcome)


class AIFunctionView(ToolsView):
    list_template = "admin/function_list.html"
    column_list = ("key", "name", "price_per_use", "enabled", "provider", "priority", "daily_limit",
                   "max_file_size", "updated_at")
    column_searchable_list = ("key", "name")
    column_filters = ("enabled", "provider.name", "price_per_use", "priority", "created_at")
    column_editable_list = ("enabled", "price_per_use", "priority")
    column_sortable_list = ("key", "name", "price_per_use", "enabled", "priority", "updated_at")
    column_default_sort = [("priority", True), ("name", False)]
    column_labels = {"price_per_use": "Price (credits)", "max_file_size": "Max file size"}
    column_extra_row_actions = [LinkRowAction("fa fa-download", "export?id={row_id}", "Export config as JSON")]
    action_roles = {"clone": ADMIN}
    form_columns = ("key", "name", "description", "enabled", "provider", "provider_config", "parameters",
                    "fallbacks", "price_per_use", "max_file_size", "allowed_formats", "output_format", "output_quality",
                    "priority", "daily_limit")
    form_overrides = {"allowed_formats": SelectMultipleField, "output_format": SelectField,
                      "parameters": JSONListField}
    form_args = {
        "allowed_formats": {"choices": [(f, f) for f in IMAGE_FORMATS], "widget": Select2Widget(multiple=True),
                            "validators": [InputRequired("Pick at least one format.")],
                            "description": "Formats are checked by decoding the image, not by file name."},
        "key": {"description": "Stable identifier used in URLs (/f/<key>) and the API, e.g. enhance, upscale."},
        "provider": {"validators": [DataRequired("Choose the provider that runs this function.")],
                     "query_factory": lambda: db.session.scalars(
                         sa.select(Provider).order_by(Provider.enabled.desc(), Provider.name)).all()},
        "max_file_size": {"description": "In bytes: 10485760 is 10 MB."},
        "priority": {"description": "Higher comes first on the site; 50 and above use the high-priority queue, "
                                    "below 0 the low one."},
        "daily_limit": {"description": "Uses per customer per day. Leave empty for no limit."},
        "output_format": {"choices": [("PNG", "PNG (lossless, fast compression)"), ("WEBP", "WebP"),
                                      ("JPEG", "JPEG")],
                          "description": "How results made on this server (the local provider) are saved."},
        "output_quality": {"validators": [NumberRange(1, 100, "Use a quality from 1 to 100.")],
                           "description": "WebP and JPEG quality, 1–100 (PNG is lossless)."},
        "parameters": {"validators": [_parameter_definition],
                       "description": "What customers set on the function's page: a JSON list of {key, type, label, help, "
                                      "default, required}; types text, prompt (max_length), number, slider (min, "
                                      "max, step), select, grid_select (options), toggle, seed, image. "
                                      "price_multiplier maps a value to a price factor, e.g. {\"4\": 2}. "
                                      "The preview beside it is the form as the site shows it."},
        "provider_config": {"validators": [_json_object],
                            "description": "JSON merged over the provider's config (this wins; params merge): "
                                           "model, timeout, retries, params…"},
    }
    inline_models = [(FunctionFallback, {
        "form_columns": ("id", "position", "provider", "provider_config"),
        "form_label": "Fallback",
        "form_args": {"provider_config": {"validators": [_json_object]},
                      "position": {"description": "Order in the chain: 1 is tried first after the primary."}},
    })]

    def scaffold_form(self):
        form_class = super().scaffold_form()

        def validate_provider_config(form, field):
            provider = form.provider.data
            if provider is not None and isinstance(field.data, dict):
                _no_credentials(provider.key, field.data, catalog.PROVIDER_SECRETS)
                _schema_errors(provider.key, provider_setup.merged_config(provider, field.data))

        form_class.validate_provider_config = validate_provider_config
        return form_class

    def _decorate(self, form, obj=None):
        providers = db.session.scalars(sa.select(Provider)).all()
        _editor(form.provider_config, {str(p.id): _public_schema(p.key) for p in providers
                                       if p.key in registry.available()}, "provider")
        form.parameters.render_kw = {**(form.parameters.render_kw or {}), "data-json-editor": "", "rows": 12,
                                     "data-parameters-preview": url_for(".parameters_preview")}
        if obj is not None and obj.provider is not None:
            try:
                config = provider_setup.effective_config(obj.provider, obj.provider_config)
                where = {k: "this function" if k in (obj.provider_config or {}) else obj.provider.name
                         for k in ("timeout", "retries")}
                # Flask-Admin renders descriptions as HTML: names and errors go in escaped (Markup.format).
                form.provider_config.description = Markup(
                    "{} Effective now: timeout {} s (from {}), retries {} (from {}).").format(
                    form.provider_config.description, config["timeout"], where["timeout"], config["retries"],
                    where["retries"])
            except ProviderError as exc:
                form.provider_config.description = Markup("{} Saved config problem: {}").format(
                    form.provider_config.description, str(exc))
        return form

    def create_form(self, obj=None):
        return self._decorate(super().create_form(obj))

    def edit_form(self, obj=None):
        return self._decorate(super().edit_form(obj), obj)

    def on_model_change(self, form, model, is_created):
        for step in model.fallbacks:
            if step.provider is None:
                raise ValueError(f"Fallback #{step.position}: choose a provider.")
            leak = catalog.credential_message(registry.plugin_class(step.provider.key), step.provider_config,
                                              catalog.PROVIDER_SECRETS)
            if leak:
                raise ValueError(f"Fallback #{step.position} ({step.provider.name}): {leak}")
            try:
                provider_setup.effective_config(step.provider, step.provider_config)
            except (ProviderError, registry.UnknownProvider) as exc:
                raise ValueError(f"Fallback #{step.position} ({step.provider.name}): {exc}") from None
        super().on_model_change(form, model, is_created)

    @expose("/test", methods=["POST"])
    def test_view(self):
        """Run the function's config on screen (saved or not) through its provider once."""
        self._require_tools()
        provider = db.session.get(Provider, request.form.get("provider", type=int) or 0)
        if provider is None:
            return jsonify({"ok": False, "error": "Choose a provider first.", "latency_ms": 0})
        try:
            overrides = json.loads(request.form.get("provider_config") or "{}")
        except json.JSONDecodeError as exc:
            return jsonify({"ok": False, "error": f"Invalid JSON: {exc.msg} (line {exc.lineno})", "latency_ms": 0})
        leak = catalog.credential_message(registry.plugin_class(provider.key), overrides, catalog.PROVIDER_SECRETS)
        if leak:
            return jsonify({"ok": False, "error": leak, "latency_ms": 0})
        return self.test_result(provider, overrides, saved=provider)

    @expose("/parameters-preview", methods=["POST"])
    def parameters_preview(self):
        """The parameters JSON on screen (saved or not) as the site's form renders it, and its errors by field."""
        self._require_tools()
        try:
            definition = json.loads(request.form.get("parameters") or "[]")
        except json.JSONDecodeError as exc:
            return jsonify({"ok": False, "errors": [f"Invalid JSON: {exc.msg} (line {exc.lineno})"], "html": ""})
        errors = parameters.definition_errors(definition)
        if errors:
            return jsonify({"ok": False, "errors": parameters.describe(errors), "html": ""})
        base = max(request.form.get("price_per_use", type=int) or 0, 0)
        html = render_template("site/_parameters_preview.html", definition=definition, price_base=base,
                               price_now=parameters.price(base, definition, parameters.defaults(definition)))
        return jsonify({"ok": True, "errors": [], "html": html})

    @expose("/export")
    def export_view(self):
        fn = db.session.get(AIFunction, request.args.get("id", type=int) or 0)
        if fn is None:
            abort(404)
        body = json.dumps(catalog.export_function(fn), indent=2, ensure_ascii=False)
        return body, 200, {"Content-Type": "application/json",
                           "Content-Disposition": f'attachment; filename="function-{fn.key}.json"'}

    @expose("/import", methods=["GET", "POST"])
    def import_view(self):
        self._require_tools()
        error = None
        if request.method == "POST":
            upload = request.files.get("file")
            raw = upload.read().decode("utf-8", "replace") if upload and upload.filename else request.form.get("json", "")
            try:
                fn, created = catalog.import_function(json.loads(raw))
                flash(f"{'Created' if created else 'Updated'} function {fn.key} from JSON.", "success")
                return redirect(url_for(".edit_view", id=fn.id))
            except json.JSONDecodeError as exc:
                error = f"Invalid JSON: {exc.msg} (line {exc.lineno})."
            except catalog.CatalogImportError as exc:
                db.session.rollback()
                error = str(exc)
        return self.render("admin/function_import.html", error=error, providers=registry.available())

    @action("clone", "Clone", "Make a disabled copy of the selected functions?")
    def action_clone(self, ids):
        for fn_id in ids:
            catalog.clone_function(db.session.get(AIFunction, int(fn_id)))
        flash(f"Cloned {len(ids)} function(s); the copies are disabled until you enable them.", "success")


class ProviderView(ToolsView):
    column_list = ("name", "key", "enabled", "functions", "last_status", "last_latency_ms", "last_checked_at",
                   "last_error")
    column_searchable_list = ("name", "key")
    column_filters = ("key", "enabled", "last_status", "created_at")
    column_labels = {"key": "Plugin", "last_latency_ms": "Latency (ms)", "last_status": "Health",
                     "last_checked_at": "Checked", "functions": "Used by"}
    column_formatters = {
        "functions": lambda _v, _c, m, _n: ", ".join(f.key for f in m.functions) or "—",
        "last_error": lambda _v, _c, m, _n: (m.last_error or "")[:120],
    }
    column_formatters_detail = {
        "config": lambda _v, _c, m, _n: Markup("<pre>{}</pre>").format(json.dumps(m.config, indent=2)),
    }
    form_columns = ("name", "key", "enabled", "config")
    form_args = {"config": {"validators": [_json_object],
                            "description": "JSON: endpoint, model, timeout, retries, default params. "
                                           "Secrets go in their own fields below."}}

    def scaffold_form(self):
        form_class = super().scaffold_form()
        # The plugin keys registered in code, so a typo cannot bind a provider to nothing.
        form_class.key = SelectField("Plugin", choices=[(k, f"{registry.plugin_class(k).name} ({k})")
                                                        for k in registry.available()],
                                     description="Which plugin runs this provider.")
        for name, plugins in _secret_names().items():
            setattr(form_class, SECRET + name, PasswordField(
                f"{name} ({', '.join(plugins)})",
                description="Stored encrypted and never shown. Leave blank to keep the stored value."))
            setattr(form_class, f"{SECRET}{name}__clear", BooleanField(f"Remove the stored {name}"))

        def validate_config(form, field):
            if isinstance(field.data, dict) and form.key.data in registry.available():
                _no_credentials(form.key.data, field.data, catalog.SECRET_INPUTS)
                saved = getattr(form, "_obj", None)
                secrets = provider_setup.secrets_after_edit(
                    decrypt_json(saved.secrets) if saved is not None else {},
                    saved is not None and saved.key == form.key.data, *_form_secrets(form))
                _schema_errors(form.key.data, provider_setup.unsaved_config(form.key.data, field.data, secrets))

        form_class.validate_config = validate_config
        return form_class

    def _decorate(self, form, obj=None):
        _editor(form.config, {k: _public_schema(k) for k in registry.available()}, "key")
        stored = decrypt_json(obj.secrets) if obj is not None else {}
        for name in _secret_names():
            if SECRET + name in form:
                form[SECRET + name].render_kw = {"placeholder": mask(stored.get(name)) or "not set",
                                                 "autocomplete": "new-password"}
        if obj is not None and obj.functions:
            dependents = ", ".join(f.key for f in obj.functions)
            form.enabled.description = Markup("Used by: {}. Disabling it takes them off the site unless a "
                                              "fallback provider can run them.").format(dependents)
            form.enabled.render_kw = {"data-confirm-disable": f"Disable this provider? These functions depend on "
                                                              f"it: {dependents}."}
        return form

    def create_form(self, obj=None):
        return self._decorate(super().create_form(obj))

    def edit_form(self, obj=None):
        form = super().edit_form(obj)
        form._obj = obj
        return self._decorate(form, obj)

    def on_model_change(self, form, model, is_created):
        stored = {} if is_created else decrypt_json(model.secrets)
        previous = sa.inspect(model).attrs.key.history.deleted
        merged = provider_setup.secrets_after_edit(stored, not previous or previous[0] == model.key,
                                                   *_form_secrets(form))
        if merged != stored:
            model.secrets = provider_setup.sealed(merged)
        super().on_model_change(form, model, is_created)

    @expose("/test", methods=["POST"])
    def test_view(self):
        """Run the provider config on screen (saved or not, secrets entered or stored) once."""
        self._require_tools()
        key = request.form.get("key", "")
        if key not in registry.available():
            return jsonify({"ok": False, "error": f"Unknown plugin {key!r}.", "latency_ms": 0})
        try:
            config = json.loads(request.form.get("config") or "{}")
        except json.JSONDecodeError as exc:
            return jsonify({"ok": False, "error": f"Invalid JSON: {exc.msg} (line {exc.lineno})", "latency_ms": 0})
        leak = catalog.credential_message(registry.plugin_class(key), config, catalog.SECRET_INPUTS)
        if leak:
            return jsonify({"ok": False, "error": leak, "latency_ms": 0})
        saved = db.session.get(Provider, request.args.get("id", type=int) or 0)
        # Stored secrets are tested only with the plugin they were saved for, never with one switched to on screen.
        secrets = provider_setup.secrets_after_edit(decrypt_json(saved.secrets) if saved is not None else {},
                                                    saved is not None and saved.key == key,
                                                    *_secret_inputs(request.form.get))
        on_screen = Provider(key=key, name=request.form.get("name") or key, config=config)
        return self.test_result(on_screen, {}, secrets, saved=saved)
