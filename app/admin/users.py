"""Admin view for users: staff and customers. Support edits users (never their role), adjusts credits
and bans; the user page shows the credit ledger as a timeline and the jobs."""
import sqlalchemy as sa
from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_admin.model.template import LinkRowAction
from flask_login import current_user
from markupsafe import Markup
from wtforms import PasswordField
from wtforms.validators import Length, Optional

from app.admin.base import ADMIN, STAFF, RoleModelView, current_role
from app.extensions import db
from app.models import CreditLedger, Job, User
from app.models.users import ROLES
from app.services import accounts, audit, credits

OPERATORS = frozenset({"admin", "support"})
TIMELINE_ROWS = 50


def _timeline(_view, _context, user, _name):
    rows = db.session.scalars(sa.select(CreditLedger).where(CreditLedger.user_id == user.id)
                              .order_by(CreditLedger.id.desc()).limit(TIMELINE_ROWS)).all()
    if not rows:
        return Markup('<span class="text-muted">No credit movements yet.</span>')
    return Markup('<table class="table table-sm"><thead><tr><th>Date</th><th>Type</th><th>Amount</th><th>Balance '
                  'after</th><th>Reason</th><th>By</th></tr></thead><tbody>{}</tbody></table>').format(
        Markup("").join(Markup("<tr><td>{}</td><td>{}</td><td>{:+d}</td><td>{}</td><td>{}</td><td>{}</td></tr>").format(
            r.created_at.strftime("%Y-%m-%d %H:%M"), r.kind, r.amount, r.balance_after, r.reason,
            r.actor.email if r.actor else "system") for r in rows))


def _jobs(_view, _context, user, _name):
    rows = db.session.scalars(sa.select(Job).where(Job.user_id == user.id).order_by(Job.id.desc())
                              .limit(TIMELINE_ROWS)).all()
    if not rows:
        return Markup('<span class="text-muted">No jobs yet.</span>')
    return Markup('<table class="table table-sm"><thead><tr><th>Job</th><th>Function</th><th>Status</th>'
                  '<th>Credits</th><th>Date</th></tr></thead><tbody>{}</tbody></table>').format(
        Markup("").join(Markup('<tr><td><a href="{}">#{}</a></td><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td></tr>').format(
            url_for("jobs.details_view", id=j.id), j.id, j.function_key, j.status, j.credits_charged,
            " (refunded)" if j.refunded else "", j.created_at.strftime("%Y-%m-%d %H:%M")) for j in rows))


class UserView(RoleModelView):
    read_roles = STAFF
    edit_roles = OPERATORS
    export_roles = ADMIN
    details_template = "admin/user_details.html"
    column_list = ("id", "email", "role", "balance", "plan", "is_banned", "credit_shortfall", "created_at",
                   "last_login_at")
    column_details_list = ("id", "email", "role", "balance", "credit_shortfall", "plan", "subscription_status",
                           "subscription_period_end", "is_banned", "ban_reason", "created_at", "last_login_at",
                           "ledger", "jobs")
    column_export_list = ("id", "email", "role", "balance", "plan", "is_banned", "credit_shortfall", "created_at",
                          "last_login_at")
    column_searchable_list = ("email",)
    column_filters = ("role", "is_banned", "plan.name", "balance", "credit_shortfall", "created_at", "last_login_at")
    column_sortable_list = ("id", "email", "role", "balance", "is_banned", "credit_shortfall", "created_at",
                            "last_login_at")
    column_labels = {"is_banned": "Banned", "last_login_at": "Last active", "created_at": "Joined",
                     "credit_shortfall": "Shortfall", "ledger": "Credit ledger", "jobs": "Usage"}
    column_descriptions = {"credit_shortfall": "Credits a refund could not take back because they were spent."}
    column_formatters = {"credit_shortfall": lambda _v, _c, m, _n: Markup(
        '<span class="badge badge-danger">{}</span>').format(m.credit_shortfall) if m.credit_shortfall else ""}
    column_formatters_detail = {"ledger": _timeline, "jobs": _jobs}
    column_extra_row_actions = [LinkRowAction("fa fa-coins", "credits?id={row_id}", "Add or remove credits"),
                                LinkRowAction("fa fa-ban", "ban?id={row_id}", "Ban or unban")]
    form_columns = ("email", "new_password", "role", "plan")
    form_choices = {"role": [(r, r.capitalize()) for r in ROLES]}
    form_extra_fields = {
        "new_password": PasswordField(
            "Password", validators=[Optional(), Length(min=8, max=128)],
            description="At least 8 characters. On edit, leave empty to keep the current password.",
        )
    }
    form_args = {"plan": {"description": "Assign any plan, hidden (B2B) ones included."}}
    form_ajax_refs = {"plan": {"fields": ("name",), "page_size": 10}}

    def _restrict(self, form):
        # Only an admin may grant or take away staff powers.
        if current_role() not in ADMIN and "role" in form:
            del form["role"]
        return form

    def create_form(self, obj=None):
        return self._restrict(super().create_form(obj))

    def edit_form(self, obj=None):
        return self._restrict(super().edit_form(obj))

    def on_model_change(self, form, model, is_created):
        if "new_password" in form and form.new_password.data:
            model.set_password(form.new_password.data)
        elif is_created:
            raise ValueError("A new user needs a password.")
        super().on_model_change(form, model, is_created)

    def _target(self):
        if current_role() not in OPERATORS:
            abort(403)
        user = db.session.get(User, request.args.get("id", type=int) or 0)
        if user is None:
            abort(404)
        return user

    @expose("/credits", methods=["GET", "POST"])
    def credits_view(self):
        """Add or remove credits with a reason: one ledger row and one audit row per change."""
        user = self._target()
        error = None
        if request.method == "POST":
            try:
                amount = int(request.form.get("amount", "0"))
                before = user.balance
                balance = credits.adjust(user.id, amount, reason=request.form.get("reason", ""), actor_id=_actor().id)
                audit.record("credits", "User", user.id, old={"balance": before}, new={"balance": balance},
                             actor=_actor())
                db.session.commit()
                flash(f"{amount:+d} credits for {user.email}; the balance is now {balance}.", "success")
                return redirect(url_for(".details_view", id=user.id))
            except ValueError as exc:
                db.session.rollback()
                error = "Enter a whole number of credits." if "invalid literal" in str(exc) else str(exc)
        return self.render("admin/user_credits.html", user=user, error=error)

    @expose("/ban", methods=["GET", "POST"])
    def ban_view(self):
        """Ban (with a reason; sessions end, unfinished jobs are cancelled and refunded) or unban."""
        user = self._target()
        error = None
        if request.method == "POST":
            try:
                if user.is_banned:
                    accounts.unban(user, _actor())
                    flash(f"{user.email} can log in again.", "success")
                else:
                    cancelled = accounts.ban(user, request.form.get("reason", ""), _actor())
                    flash(f"{user.email} is banned; {cancelled} unfinished job(s) cancelled and refunded.", "success")
                return redirect(url_for(".details_view", id=user.id))
            except accounts.AccountError as exc:
                db.session.rollback()
                error = str(exc)
        return self.render("admin/user_ban.html", user=user, error=error)


def _actor():
    return current_user._get_current_object()
