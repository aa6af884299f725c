"""The admin at /admin: one Flask-Admin instance per app, every view role-aware (see base.py)."""
from flask import abort, current_app, flash, request
from flask_admin import Admin, expose
from flask_admin.theme import Bootstrap4Theme
from flask_login import current_user

from app.admin.backups import BackupView
from app.admin.base import ProtectedIndexView, RoleModelView
from app.admin.billing import CreditLedgerView, OrderView, PaymentView, PlanView
from app.admin.catalog import AIFunctionView, ProviderView
from app.admin.coupons import CouponRedemptionView, CouponView
from app.admin.cms import PageView
from app.admin.history import AuditLogView, EmailLogView, JobLogView, JobView
from app.admin.settings import SettingsView
from app.admin.users import UserView
from app.extensions import db
from app.models import (AIFunction, AuditLog, Backup, Coupon, CouponRedemption, CreditLedger, EmailLog, Job, JobLog,
                        Order, Page, Payment, Plan, Provider, User)
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
        if not current_app.config["REDIS_URL"]:
            # No scheduler without Redis (make run): bring the changed days' rollups up to date first.
            analytics.refresh_changed()
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
    admin.add_view(SettingsView(name="Settings", endpoint="settings"))
    admin.add_view(AuditLogView(AuditLog, db, name="Audit log", category="Security", endpoint="audit"))
    admin.add_view(EmailLogView(EmailLog, db, name="Emails", category="Security", endpoint="emails"))
    admin.add_view(BackupView(Backup, db, name="Backups", category="Security", endpoint="backups"))
    admin.init_app(app)
    app.extensions["neurapix_admin"] = admin
    return admin
