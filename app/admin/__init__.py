"""The admin at /admin: one Flask-Admin instance per app, every view role-aware (see base.py)."""
from flask import abort, flash, request
from flask_admin import Admin, expose
from flask_admin.menu import MenuLink
from flask_admin.theme import Bootstrap4Theme
from flask_login import current_user

from app.admin import formatters
from app.admin.apps import ApiKeyView, ClientAppView, WebhookDeliveryView
from app.admin.backups import BackupView
from app.admin.base import ProtectedIndexView, RoleModelView
from app.admin.billing import CreditLedgerView, OrderView, PaymentView, PlanView
from app.admin.catalog import AIFunctionView, ProviderView
from app.admin.coupons import CouponRedemptionView, CouponView
from app.admin.cms import PageView
from app.admin.history import AuditLogView, EmailLogView, JobLogView, JobView
from app.admin.mail_templates import EmailTemplateView
from app.admin.settings import SettingsView
from app.admin.showcase import LandingExampleView, ModerationView, PromptView
from app.admin.users import UserView
from app import security
from app.extensions import db
from app.models import (AIFunction, ApiKey, AuditLog, Backup, ClientApp, Coupon, CouponRedemption, CreditLedger,
                        EmailLog, Job, JobLog, LandingExample, Order, Page, Payment, Plan, Prompt, Provider, User,
                        WebhookDelivery)
from app.services import analytics, backup, dashboard, exports


class DashboardView(ProtectedIndexView):
    """The admin home: the business half for admin and viewer, the operational half for all staff."""

    def _range(self):
        try:
            return dashboard.parse_range(request.args)
        except dashboard.RangeError as exc:
            flash(str(exc), "error")
            return dashboard.parse_range({})

    @expose("/")
    def index(self):
        analytics.refresh_if_unscheduled()
        rng = self._range()
        data = dashboard.build(rng, current_user.role)
        # Backups are the owner's business: only admins see that the last one failed.
        failed_backup = backup.last_failure() if current_user.role == "admin" else None
        charts = {key: chart.data() for key, chart in data["charts"].items()}
        return self.render("admin/dashboard.html", d=data, rng=rng, ranges=dashboard.RANGES, charts_json=charts,
                           failed_backup=failed_backup)

    @expose("/dashboard.csv")
    def csv(self):
        rng = self._range()
        data = dashboard.build(rng, current_user.role)
        chart = data["charts"].get(request.args.get("chart", ""))
        if chart is None:
            abort(404)
        lines = exports.export(f"dashboard:{chart.key}", "csv", chart.columns, chart.rows,
                               {"chart": chart.key, **rng.params()}, actor=current_user)
        return exports.response(f"neurapix-{chart.key}-{rng.start.isoformat()}-{rng.end.isoformat()}.csv", "csv",
                                lines)


def exportable(app):
    """The lists an admin may export, by endpoint: the CLI exports the very same lists."""
    return {v.endpoint: v for v in app.extensions["neurapix_admin"]._views
            if isinstance(v, RoleModelView) and "admin" in v.export_roles}


def init_app(app):
    # Created per app rather than in extensions: Flask-Admin binds its views to one app's blueprints.
    admin = Admin(
        name="Neurapix admin",
        theme=Bootstrap4Theme(base_template="admin/neurapix_base.html", swatch=app.config["FLASK_ADMIN_SWATCH"], fluid=True),
        index_view=DashboardView(name="Dashboard", url="/admin"),
    )
    admin.add_view(AIFunctionView(AIFunction, db, name="AI functions", category="Catalog",
                                  endpoint="functions"))
    admin.add_view(ProviderView(Provider, db, name="Providers", category="Catalog", endpoint="providers"))
    admin.add_view(UserView(User, db, name="Users", category="People", endpoint="users"))
    admin.add_view(JobView(Job, db, name="Jobs", category="People", endpoint="jobs"))
    admin.add_view(JobLogView(JobLog, db, name="Job logs", category="People", endpoint="job_logs"))
    admin.add_view(PlanView(Plan, db, name="Plans", category="Billing", endpoint="plans"))
    admin.add_view(OrderView(Order, db, name="Orders", category="Billing", endpoint="orders"))
    admin.add_view(PaymentView(Payment, db, name="Payments", category="Billing", endpoint="payments"))
    admin.add_view(CreditLedgerView(CreditLedger, db, name="Credit ledger", category="Billing",
                                    endpoint="ledger"))
    admin.add_view(CouponView(Coupon, db, name="Coupons", category="Billing", endpoint="coupons"))
    admin.add_view(CouponRedemptionView(CouponRedemption, db, name="Coupon uses", category="Billing",
                                        endpoint="coupon_uses"))
    admin.add_view(PageView(Page, db, name="Pages", category="Content", endpoint="pages"))
    admin.add_view(EmailTemplateView(name="Email templates", category="Content", endpoint="email_templates"))
    admin.add_view(PromptView(Prompt, db, name="Prompt gallery", category="Content", endpoint="prompts"))
    admin.add_view(LandingExampleView(LandingExample, db, name="Landing examples", category="Content",
                                      endpoint="landing_examples"))
    admin.add_view(ModerationView(name="Moderation", category="Content", endpoint="moderation"))
    admin.add_view(ClientAppView(ClientApp, db, name="Client apps", category="API", endpoint="apps"))
    admin.add_view(ApiKeyView(ApiKey, db, name="API keys", category="API", endpoint="api_keys"))
    admin.add_view(WebhookDeliveryView(WebhookDelivery, db, name="Webhook deliveries", category="API",
                                       endpoint="webhook_deliveries"))
    admin.add_menu_item(MenuLink(name="API reference", url="/api/v1/reference", category="API"))
    admin.add_view(SettingsView(name="Settings", endpoint="settings"))
    admin.add_view(AuditLogView(AuditLog, db, name="Audit log", category="Security", endpoint="audit"))
    admin.add_view(EmailLogView(EmailLog, db, name="Emails", category="Security", endpoint="emails"))
    admin.add_view(BackupView(Backup, db, name="Backups", category="Security", endpoint="backups"))
    admin.init_app(app)
    # Originals shown to moderators keep the sandbox policy of stored files.
    security.view_options(app, ModerationView.image, content_security_policy=None)
    app.extensions["neurapix_admin"] = admin
    # The same formatters for admin templates: {{ row.created_at|local_time }}, {{ n|file_size }}, {{ s|status_badge }}.
    app.jinja_env.filters.update(local_time=formatters.local_time, file_size=formatters.file_size,
                                 status_badge=formatters.status_badge, money=formatters.money)
    return admin
