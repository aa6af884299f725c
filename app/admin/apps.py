"""Admin views for client apps (seed 001): the apps, their API keys and the webhooks sent to them.

Admins change them; viewers read; support has no access (apps are the owner's integrations). A key or a
webhook secret is shown once, on the page that made it, never stored in clear nor flashed into a cookie.
"""
from urllib.parse import urlsplit

from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_admin.actions import action
from flask_login import current_user
from markupsafe import Markup
from wtforms import SelectMultipleField
from wtforms.validators import Optional, ValidationError

from app.admin.base import ADMIN, ReadOnlyModelView, RoleModelView, current_role
from app.extensions import db
from app.models import ClientApp
from app.services import analytics, app_webhooks, apps, fetch

USAGE_DAYS = 30


def _http_url(_form, field):
    if field.data and urlsplit(field.data).scheme not in fetch.DEFAULT_PORTS:
        raise ValidationError("Enter an http(s) URL, e.g. https://yourapp.example.com/webhooks/neurapix.")


def _actor():
    return current_user._get_current_object()


class ClientAppView(RoleModelView):
    details_template = "admin/app_details.html"
    column_list = ("id", "name", "enabled", "webhook_url", "rate_limit_per_minute", "max_jobs_in_flight",
                   "starting_credits", "created_at")
    column_details_list = ("id", "name", "enabled", "webhook_url", "allowed_functions", "rate_limit_per_minute",
                           "max_jobs_in_flight", "starting_credits", "created_at")
    column_searchable_list = ("name",)
    column_filters = ("enabled", "created_at")
    column_labels = {"webhook_url": "Default webhook URL", "rate_limit_per_minute": "Requests per minute (per key)",
                     "max_jobs_in_flight": "Jobs in flight", "starting_credits": "Starting credits",
                     "allowed_functions": "Allowed functions"}
    column_formatters = {"allowed_functions": lambda _v, _c, m, _n: ", ".join(m.allowed_functions or [])
                         or "every function on the site"}
    column_formatters_detail = column_formatters
    form_columns = ("name", "enabled", "webhook_url", "allowed_functions", "rate_limit_per_minute",
                    "max_jobs_in_flight", "starting_credits")
    form_overrides = {"allowed_functions": SelectMultipleField}
    form_args = {
        "webhook_url": {"validators": [Optional(), _http_url],
                        "description": "Where job-end webhooks go unless a request names its own webhook_url."},
        "allowed_functions": {"choices": [], "validate_choice": False, "validators": [Optional()],
                              "description": "None selected: every function on the site."},
        "starting_credits": {"description": "Credits each new user of this app starts with."},
        "max_jobs_in_flight": {"description": "Unfinished jobs the app may have at once; more get 429."},
    }

    def _with_functions(self, form):
        if "allowed_functions" in form:
            form.allowed_functions.choices = [(k, k) for k in apps.function_keys()]
        return form

    def create_form(self, obj=None):
        return self._with_functions(super().create_form(obj))

    def edit_form(self, obj=None):
        return self._with_functions(super().edit_form(obj))

    def on_model_change(self, form, model, is_created):
        model.allowed_functions = sorted(set(model.allowed_functions or []))
        super().on_model_change(form, model, is_created)

    def render(self, template, **kwargs):
        if template == self.details_template and kwargs.get("model") is not None:
            analytics.refresh_if_unscheduled()
            kwargs["usage"] = apps.app_usage(kwargs["model"].id, USAGE_DAYS)
        return super().render(template, **kwargs)

    def _app(self):
        if current_role() not in ADMIN:
            abort(403)
        if request.method != "POST":
            abort(405)
        row = db.session.get(ClientApp, request.args.get("id", type=int) or 0)
        if row is None:
            abort(404)
        return row

    @expose("/new-key", methods=["POST"])
    def new_key_view(self):
        """Make an API key and show it this once."""
        row = self._app()
        key, raw = apps.create_key(row.id, request.form.get("name", ""), actor=_actor())
        return self.render("admin/app_secret.html", app=row, title="New API key", secret=raw,
                           note=f"Key {key.prefix}… is active now. Copy it: it is not shown again.")

    @expose("/rotate-secret", methods=["POST"])
    def rotate_secret_view(self):
        """A new webhook signing secret, shown this once; the old one stops signing at once."""
        row = self._app()
        raw = apps.rotate_webhook_secret(row.id, actor=_actor())
        return self.render("admin/app_secret.html", app=row, title="New webhook signing secret", secret=raw,
                           note="Webhooks are signed with this secret from now on. Copy it: it is not shown again.")

    @expose("/revoke-key", methods=["POST"])
    def revoke_key_view(self):
        row = self._app()
        key_id = request.form.get("key_id", type=int)
        if apps.revoke_key(key_id, actor=_actor()):
            flash("The key is revoked: requests with it now get 401.", "success")
        else:
            flash("That key was already revoked.", "info")
        return redirect(url_for(".details_view", id=row.id))


class ApiKeyView(ReadOnlyModelView):
    column_list = ("id", "app", "prefix", "name", "created_at", "last_used_at", "revoked_at")
    column_filters = ("app.name", "revoked_at", "last_used_at", "created_at")
    column_labels = {"prefix": "Key", "last_used_at": "Last used", "revoked_at": "Revoked"}
    column_formatters = {"prefix": lambda _v, _c, m, _n: Markup("<code>{}…</code>").format(m.prefix)}
    action_roles = {"revoke": ADMIN}

    @action("revoke", "Revoke", "Revoke the selected keys? Requests with them get 401 at once.")
    def action_revoke(self, ids):
        revoked = [i for i in ids if apps.revoke_key(int(i), actor=_actor())]
        flash(f"{len(revoked)} key(s) revoked; {len(ids) - len(revoked)} were already revoked.", "info")


def _attempts(_view, _context, row, _name):
    if not row.attempts:
        return Markup('<span class="text-muted">Not attempted yet.</span>')
    return Markup('<table class="table table-sm"><thead><tr><th>Time</th><th>Answer</th><th>Latency</th>'
                  '<th>Error</th><th>Response excerpt</th></tr></thead><tbody>{}</tbody></table>').format(
        Markup("").join(Markup("<tr><td>{}</td><td>{}</td><td>{} ms</td><td>{}</td><td><code>{}</code></td></tr>")
                        .format(a.get("at", "")[:19].replace("T", " "), a.get("status_code") or "none",
                                a.get("latency_ms"), a.get("error") or "", a.get("excerpt") or "")
                        for a in reversed(row.attempts)))


class WebhookDeliveryView(ReadOnlyModelView):
    column_list = ("id", "app", "job_id", "event", "status", "attempt_count", "last_status_code",
                   "last_latency_ms", "created_at", "delivered_at")
    column_details_list = ("id", "app", "job_id", "event", "url", "status", "attempt_count", "last_status_code",
                           "last_latency_ms", "last_error", "payload", "attempts", "created_at", "delivered_at")
    column_filters = ("status", "event", "app.name", "job_id", "created_at")
    column_labels = {"attempt_count": "Attempts", "last_status_code": "Last answer", "last_latency_ms": "Latency (ms)",
                     "attempts": "Attempt log", "job_id": "Job"}
    column_formatters_detail = {"attempts": _attempts}
    action_roles = {"redeliver": ADMIN}

    @action("redeliver", "Redeliver", "Send the selected webhooks again?")
    def action_redeliver(self, ids):
        sent = [i for i in ids if app_webhooks.redeliver(int(i), _actor())]
        flash(f"{len(sent)} webhook(s) queued for delivery again.", "info")
