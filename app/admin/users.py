"""Admin view for users: staff and customers. Who may act on whom is services.permissions (support: customers
only, never their role or password); the user page shows the ledger, the jobs and the account actions."""
import sqlalchemy as sa
from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_admin.model.template import LinkRowAction
from flask_login import current_user
from markupsafe import Markup
from wtforms import PasswordField
from wtforms.validators import DataRequired, Optional, ValidationError

from app.admin.base import ADMIN, STAFF, RoleModelView, current_role
from app.extensions import db
from app.models import CreditLedger, Job, User
from app.models.users import ROLES
from app.auth.forms import StrongPassword, ValidEmail
from app.services import accounts, passwords, permissions, throttle

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


def _referrals(_view, _context, user, _name):
    """Who referred this user, and whom they referred (the rewards are in the ledger above)."""
    by = db.session.get(User, user.referred_by_id) if user.referred_by_id else None
    referred = db.session.scalars(sa.select(User).where(User.referred_by_id == user.id).order_by(User.id.desc())
                                  .limit(TIMELINE_ROWS)).all()
    count = db.session.scalar(sa.select(sa.func.count()).select_from(User).where(User.referred_by_id == user.id))
    parts = [Markup("Code: <code>{}</code>").format(user.referral_code or "not made yet")]
    if by is not None:
        parts.append(Markup('Referred by <a href="{}">{}</a>').format(url_for("users.details_view", id=by.id), by.email))
    parts.append(Markup("Referred {} customer(s){}").format(count, ":" if referred else "."))
    items = Markup("").join(Markup('<li><a href="{}">{}</a> · joined {}{}</li>').format(
        url_for("users.details_view", id=r.id), r.email, r.created_at.strftime("%Y-%m-%d"),
        " · verified" if r.email_verified_at else "") for r in referred)
    return Markup("<br>").join(parts) + (Markup("<ul>{}</ul>").format(items) if referred else Markup(""))


class UserView(RoleModelView):
    read_roles = STAFF
    edit_roles = OPERATORS
    export_roles = ADMIN
    details_template = "admin/user_details.html"
    column_list = ("id", "email", "role", "balance", "plan", "is_banned", "credit_shortfall", "created_at",
                   "last_login_at", "app", "external_id")
    column_details_list = ("id", "email", "app", "external_id", "role", "balance", "credit_shortfall", "plan", "subscription_status",
                           "subscription_period_end", "is_banned", "ban_reason", "created_at", "last_login_at",
                           "email_verified_at", "deleted_at", "referrals", "ledger", "jobs")
    column_export_list = ("id", "email", "role", "balance", "plan", "is_banned", "credit_shortfall", "created_at",
                          "last_login_at")
    column_searchable_list = ("email", "external_id")
    column_filters = ("app.name", "role", "is_banned", "plan.name", "balance", "credit_shortfall", "created_at", "last_login_at")
    column_sortable_list = ("id", "email", "role", "balance", "is_banned", "credit_shortfall", "created_at",
                            "last_login_at")
    column_labels = {"is_banned": "Banned", "last_login_at": "Last active", "created_at": "Joined",
                     "credit_shortfall": "Shortfall", "ledger": "Credit ledger", "jobs": "Usage",
                     "email_verified_at": "Email confirmed", "deleted_at": "Deleted by the customer",
                     "app": "Client app", "external_id": "App user id"}
    column_descriptions = {"credit_shortfall": "Credits a refund could not take back because they were spent."}
    column_formatters = {"credit_shortfall": lambda _v, _c, m, _n: Markup(
        '<span class="badge badge-danger">{}</span>').format(m.credit_shortfall) if m.credit_shortfall else ""}
    column_formatters_detail = {"ledger": _timeline, "jobs": _jobs, "referrals": _referrals}
    column_extra_row_actions = [LinkRowAction("fa fa-coins", "credits?id={row_id}", "Add or remove credits"),
                                LinkRowAction("fa fa-ban", "ban?id={row_id}", "Ban or unban")]
    form_columns = ("email", "new_password", "role", "plan")
    form_choices = {"role": [(r, r.capitalize()) for r in ROLES]}
    form_extra_fields = {
        "new_password": PasswordField(
            "Password", validators=[Optional(), StrongPassword()],
            description=f"At least {passwords.MIN_LENGTH} characters, not a common password. On edit, leave empty "
                        "to keep the current password; a new one signs the user out everywhere.",
        )
    }
    form_args = {"email": {"validators": [DataRequired(), ValidEmail()]},
                 "plan": {"description": "Assign any plan, hidden (B2B) ones included."}}
    form_ajax_refs = {"plan": {"fields": ("name",), "page_size": 10}}

    def _restrict(self, form):
        # Only an admin may grant or take away staff powers, or set someone's password.
        if current_role() not in ADMIN:
            for name in ("role", "new_password"):
                if name in form:
                    del form[name]
        return form

    def create_form(self, obj=None):
        return self._restrict(super().create_form(obj))

    def edit_form(self, obj=None):
        form = self._restrict(super().edit_form(obj))
        if obj is not None and obj.app_id is not None and "email" in form:
            # A client app's user has no address unless staff give one.
            form.email.validators = [Optional(), ValidEmail()]
            form.email.flags.required = False
        return form

    def _refuse_unless(self, action, user_id):
        """403 unless services.permissions lets the signed-in user do `action` to that user."""
        user = db.session.get(User, user_id) if user_id is not None else None
        if user is not None and not permissions.may_act_on_user(_actor(), user, action):
            abort(403)

    def _handle_view(self, name, **kwargs):
        denied = super()._handle_view(name, **kwargs)
        if denied is not None:
            return denied
        if name == "edit_view":
            self._refuse_unless("edit", request.args.get("id", type=int))
        elif name == "delete_view" and request.method == "POST":
            self._refuse_unless("delete", request.form.get("id", type=int))
        elif name == "action_view" and request.method == "POST" and request.form.get("action") == "delete":
            for row_id in request.form.getlist("rowid", type=int):
                self._refuse_unless("delete", row_id)
        return None

    def on_model_change(self, form, model, is_created):
        old_role = sa.inspect(model).attrs.role.history.deleted
        new_password = form.new_password.data if "new_password" in form else None
        try:
            accounts.staff_edit(_actor(), model, old_role[0] if old_role else model.role, is_created, new_password)
        except accounts.AccountError as exc:
            # Flask-Admin shows a ValidationError on the form and rolls the whole change back.
            raise ValidationError(str(exc)) from None
        super().on_model_change(form, model, is_created)

    def on_model_delete(self, model):
        # Checked again row by row: a bulk delete must not remove the last admin once the others are gone.
        if not permissions.may_act_on_user(_actor(), model, "delete"):
            raise ValidationError(f"{model.email} was not deleted: this would leave no active admin.")
        super().on_model_delete(model)

    def render(self, template, **kwargs):
        kwargs.setdefault("user_may", lambda user, action: permissions.may_act_on_user(_actor(), user, action))
        kwargs.setdefault("login_locked", throttle.is_locked)
        return super().render(template, **kwargs)

    def _target(self, action):
        if current_role() not in OPERATORS:
            abort(403)
        user = db.session.get(User, request.args.get("id", type=int) or 0)
        if user is None:
            abort(404)
        if not permissions.may_act_on_user(_actor(), user, action(user) if callable(action) else action):
            abort(403)
        return user

    @expose("/credits", methods=["GET", "POST"])
    def credits_view(self):
        """Add or remove credits with a reason: one ledger row and one audit row per change."""
        user = self._target("credits")
        error = None
        if request.method == "POST":
            try:
                balance = accounts.adjust_credits(_actor(), user, request.form.get("amount", ""),
                                                  request.form.get("reason", ""))
            except accounts.AccountError as exc:
                db.session.rollback()
                error = str(exc)
            else:
                flash(f"Credits adjusted for {user.email}; the balance is now {balance}.", "success")
                return redirect(url_for(".details_view", id=user.id))
        return self.render("admin/user_credits.html", user=user, error=error), 400 if error else 200

    @expose("/ban", methods=["GET", "POST"])
    def ban_view(self):
        """Ban (with a reason; sessions end, unfinished jobs are cancelled and refunded) or unban."""
        user = self._target(lambda u: "unban" if u.is_banned else "ban")
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
        return self.render("admin/user_ban.html", user=user, error=error), 400 if error else 200

    def _post_action(self, action, run, done):
        """A one-button POST action on a user (from the details page): allowed, run, audited by the service."""
        user = self._target(action)
        if request.method != "POST":
            return redirect(url_for(".details_view", id=user.id))
        try:
            run(user, _actor())
        except accounts.AccountError as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            flash(done.format(email=user.email), "success")
        return redirect(url_for(".details_view", id=user.id))

    @expose("/reset-email", methods=["GET", "POST"])
    def reset_email_view(self):
        """Email the user a one-time password reset link (staff never see the link nor the password)."""
        return self._post_action("reset_link", accounts.send_password_reset,
                                 "A password reset email is on its way to {email}.")

    @expose("/sign-out", methods=["GET", "POST"])
    def sign_out_view(self):
        """End every session and remember-me cookie of the user."""
        return self._post_action("revoke_sessions", accounts.sign_out_everywhere,
                                 "{email} is signed out on every device.")

    @expose("/unlock", methods=["GET", "POST"])
    def unlock_view(self):
        """Lift a lockout after too many failed logins."""
        return self._post_action("unlock", accounts.unlock, "{email} can try to log in again.")

    @expose("/reset-2fa", methods=["GET", "POST"])
    def reset_2fa_view(self):
        """Turn off the user's two-factor authentication (a lost phone); they enrol again from their profile."""
        return self._post_action("reset_2fa", accounts.reset_two_factor,
                                 "Two-factor authentication is off for {email}; they can set it up again.")


def _actor():
    return current_user._get_current_object()
