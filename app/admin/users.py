"""Admin view for users: staff and customers. Who may act on whom is services.permissions (support: customers
only, never their role or password); the user page shows the ledger, the jobs and the account actions."""
import sqlalchemy as sa
from flask import abort, flash, g, redirect, request, url_for
from flask_admin import expose
from flask_admin.actions import action
from flask_login import current_user
from markupsafe import Markup
from wtforms import PasswordField
from wtforms.validators import DataRequired, Optional, ValidationError

from app.admin.base import ADMIN, STAFF, RoleModelView, current_role
from app.admin.formatters import badge, local_time, money, status_badge
from app.admin.row_actions import RowAction
from app.extensions import db
from app.models import CreditLedger, Job, Payment, User
from app.models.users import ROLES
from app.auth.forms import StrongPassword, ValidEmail
from app.services import accounts, passwords, payments, permissions, settings, throttle

OPERATORS = frozenset({"admin", "support"})
TIMELINE_ROWS = 50
BULK_MAX = 100  # users one credits or ban form acts on


def _table(headers, rows, empty):
    if not rows:
        return Markup('<span class="text-muted">{}</span>').format(empty)
    head = Markup("").join(Markup("<th>{}</th>").format(h) for h in headers)
    body = Markup("").join(Markup("<tr>{}</tr>").format(Markup("").join(Markup("<td>{}</td>").format(c) for c in row))
                           for row in rows)
    return Markup('<div class="table-responsive"><table class="table table-sm"><thead><tr>{}</tr></thead>'
                  '<tbody>{}</tbody></table></div>').format(head, body)


def _timeline(_view, _context, user, _name):
    rows = db.session.scalars(sa.select(CreditLedger).where(CreditLedger.user_id == user.id)
                              .order_by(CreditLedger.id.desc()).limit(TIMELINE_ROWS)).all()
    return _table(("Date", "Type", "Amount", "Balance after", "Reason", "By"),
                  [(local_time(r.created_at), r.kind, f"{r.amount:+d}", r.balance_after, r.reason,
                    r.actor.email if r.actor else "system") for r in rows], "No credit movements yet.")


def _jobs(_view, _context, user, _name):
    rows = db.session.scalars(sa.select(Job).where(Job.user_id == user.id).order_by(Job.id.desc())
                              .limit(TIMELINE_ROWS)).all()
    return _table(("Job", "Function", "Status", "Credits", "Date"),
                  [(Markup('<a href="{}">#{}</a>').format(url_for("jobs.details_view", id=j.id), j.id), j.function_key,
                    status_badge(j.status), f"{j.credits_charged}{' (refunded)' if j.refunded else ''}",
                    local_time(j.created_at)) for j in rows], "No jobs yet.")


def _payments(_view, _context, user, _name):
    rows = db.session.scalars(sa.select(Payment).where(Payment.user_id == user.id).order_by(Payment.id.desc())
                              .limit(TIMELINE_ROWS)).all()

    def reference(p):
        url = payments.payment_dashboard_url(p)
        if url:
            return Markup('<a href="{}" target="_blank" rel="noopener noreferrer">{} in {}</a>').format(
                url, p.external_id, p.provider.capitalize())
        return p.external_id or ""

    return _table(("Payment", "Date", "Gateway", "Status", "Amount", "Credits", "Plan", "Reference"),
                  [(Markup('<a href="{}">#{}</a>').format(url_for("payments.details_view", id=p.id), p.id),
                    local_time(p.created_at), p.provider, status_badge(p.status), money(p.amount, p.currency),
                    p.credits, p.plan_name or "", reference(p)) for p in rows], "No payments yet.")


def spend_text(spent):
    """[(currency, minor units)] → "$19.98 + €5.00", or "nothing yet"."""
    return " + ".join(money(amount, currency) for currency, amount in spent) or "nothing yet"


def _spend(_view, _context, user, _name):
    # The list computes the whole page's totals in one query (UserView.get_list); a detail page asks for one.
    cached = g.get("neurapix_user_spend")
    spent = cached.get(user.id, []) if cached is not None else payments.total_spend([user.id]).get(user.id, [])
    return spend_text(spent)


def is_low(user):
    return user.role == "customer" and user.balance < settings.get("customers.low_balance")


def _balance(_view, _context, user, _name):
    if is_low(user):
        return Markup('{} {}').format(user.balance, badge("low", "warn"))
    return user.balance


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
        url_for("users.details_view", id=r.id), r.email, local_time(r.created_at),
        " · verified" if r.email_verified_at else "") for r in referred)
    return Markup("<br>").join(parts) + (Markup("<ul>{}</ul>").format(items) if referred else Markup(""))


class UserView(RoleModelView):
    read_roles = STAFF
    edit_roles = OPERATORS
    export_roles = ADMIN
    details_template = "admin/user_details.html"
    action_roles = {"credits": OPERATORS, "ban": OPERATORS}
    column_list = ("id", "email", "role", "balance", "total_spend", "plan", "is_banned", "credit_shortfall",
                   "created_at", "last_login_at", "app", "external_id")
    column_details_list = ("id", "email", "app", "external_id", "role", "balance", "credit_shortfall", "plan",
                           "subscription_status", "subscription_period_end", "is_banned", "ban_reason", "created_at",
                           "last_login_at", "email_verified_at", "deleted_at", "referrals", "jobs", "payments",
                           "ledger")
    column_export_list = ("id", "email", "role", "balance", "plan", "is_banned", "credit_shortfall", "created_at",
                          "last_login_at")
    column_searchable_list = ("email", "external_id")
    column_filters = ("app.name", "role", "is_banned", "plan.name", "balance", "credit_shortfall", "created_at", "last_login_at")
    column_sortable_list = ("id", "email", "role", "balance", "is_banned", "credit_shortfall", "created_at",
                            "last_login_at")
    column_labels = {"is_banned": "Banned", "last_login_at": "Last active", "created_at": "Joined",
                     "credit_shortfall": "Shortfall", "ledger": "Credit ledger", "jobs": "Jobs",
                     "email_verified_at": "Email confirmed", "deleted_at": "Deleted by the customer",
                     "total_spend": "Total spend", "payments": "Payments", "app": "Client app",
                     "external_id": "App user id"}
    column_descriptions = {"credit_shortfall": "Credits a refund could not take back because they were spent.",
                           "total_spend": "Succeeded payments, per currency."}
    column_formatters = {"credit_shortfall": lambda _v, _c, m, _n: badge(m.credit_shortfall, "bad")
                         if m.credit_shortfall else "",
                         "balance": _balance, "total_spend": _spend}
    column_formatters_detail = {"ledger": _timeline, "jobs": _jobs, "payments": _payments, "referrals": _referrals}
    column_extra_row_actions = [
        RowAction("credits", "fa fa-money", "Add or remove credits", endpoint=".credits_view",
                  shown=lambda _v, u: permissions.may_act_on_user(_actor(), u, "credits")),
        RowAction("ban", "fa fa-ban", "Ban or unban", endpoint=".ban_view",
                  shown=lambda _v, u: permissions.may_act_on_user(_actor(), u, "unban" if u.is_banned else "ban")),
    ]
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
        kwargs.setdefault("is_low", is_low)
        if template == self.details_template:
            user = kwargs["model"]
            kwargs["total_spend"] = spend_text(payments.total_spend([user.id]).get(user.id, []))
            kwargs["gateway_links"] = payments.dashboard_links(user)
        return super().render(template, **kwargs)

    def get_list(self, *args, **kwargs):
        count, rows = super().get_list(*args, **kwargs)
        if kwargs.get("execute", True):
            # The page's total spends in one grouped query, not one per row.
            g.neurapix_user_spend = payments.total_spend([u.id for u in rows])
        return count, rows

    def _target(self, action):
        (user,) = self._targets(action, single=True)
        return user

    def _targets(self, action, single=False):
        """The users named by ?id= (one, or several from the bulk menu); 403 unless the actor may do `action`
        (a name, or a function of the user) to every one of them."""
        if current_role() not in OPERATORS:
            abort(403)
        ids = request.args.getlist("id")
        if not ids or len(ids) > (1 if single else BULK_MAX) or not all(self._well_formed_id(i) for i in ids):
            abort(404)
        users = db.session.scalars(sa.select(User).where(User.id.in_({int(i) for i in ids})).order_by(User.id)).all()
        if len(users) != len(set(ids)):
            abort(404)
        if not all(permissions.may_act_on_user(_actor(), u, action(u) if callable(action) else action) for u in users):
            abort(403)
        return users

    def _each(self, users, run):
        """Run a service call per user (each commits its own change): ([(user, result)], [(user, error)])."""
        done, refused = [], []
        for user in users:
            try:
                done.append((user, run(user)))
            except accounts.AccountError as exc:
                db.session.rollback()
                refused.append((user, str(exc)))
        return done, refused

    def _bulk_outcome(self, done, refused, what):
        """After a form for several users: a summary, back to the list; nothing done at all is an error."""
        if not done:
            return ("; ".join(sorted({message for _u, message in refused}))
                    or "Nothing to change: every selected user is already banned.")
        flash(f"{what} for {len(done)} user(s)." + "".join(f" {u.email}: {m}" for u, m in refused),
              "success" if not refused else "warning")
        return None

    @expose("/credits", methods=["GET", "POST"])
    def credits_view(self):
        """Add or remove credits with a reason: one ledger row and one audit row per user changed."""
        users = self._targets("credits")
        error = None
        if request.method == "POST":
            amount, reason = request.form.get("amount", ""), request.form.get("reason", "")
            done, refused = self._each(users, lambda u: accounts.adjust_credits(_actor(), u, amount, reason))
            if len(users) == 1 and done:
                flash(f"Credits adjusted for {users[0].email}; the balance is now {done[0][1]}.", "success")
                return redirect(url_for(".details_view", id=users[0].id))
            error = refused[0][1] if len(users) == 1 else self._bulk_outcome(done, refused, "Credits adjusted")
            if error is None:
                return redirect(url_for(".index_view"))
        return self.render("admin/user_credits.html", users=users, error=error), 400 if error else 200

    @expose("/ban", methods=["GET", "POST"])
    def ban_view(self):
        """Ban (with a reason; sessions end, unfinished jobs are cancelled and refunded) or unban one user; from
        the bulk menu, ban several (those already banned are left as they are)."""
        users = self._targets(lambda u: "unban" if u.is_banned and len(request.args.getlist("id")) == 1 else "ban")
        error = None
        if request.method == "POST":
            if len(users) == 1 and users[0].is_banned:
                done, refused = self._each(users, lambda u: accounts.unban(u, _actor()))
                if done:
                    flash(f"{users[0].email} can log in again.", "success")
            else:
                reason = request.form.get("reason", "")
                done, refused = self._each([u for u in users if not u.is_banned],
                                           lambda u: accounts.ban(u, reason, _actor()))
                if len(users) == 1 and done:
                    flash(f"{users[0].email} is banned; {done[0][1]} unfinished job(s) cancelled and refunded.",
                          "success")
            if len(users) == 1:
                if done:
                    return redirect(url_for(".details_view", id=users[0].id))
                error = refused[0][1]
            else:
                error = self._bulk_outcome(done, refused, "Banned")
                if error is None:
                    return redirect(url_for(".index_view"))
        return self.render("admin/user_ban.html", users=users, error=error), 400 if error else 200

    def _bulk_form(self, endpoint, ids, action_name):
        """From "With selected": open the form for the selected users this actor may act on."""
        actor = _actor()
        users = db.session.scalars(sa.select(User).where(User.id.in_([int(i) for i in ids])).order_by(User.id)).all()
        chosen = [u.id for u in users if permissions.may_act_on_user(actor, u, action_name)
                  and not (action_name == "ban" and u.is_banned)][:BULK_MAX]
        if len(chosen) < len(ids):
            flash(f"{len(ids) - len(chosen)} selected user(s) left out: not yours to change"
                  f"{', already banned' if action_name == 'ban' else ''} or beyond {BULK_MAX} at once.", "info")
        return redirect(url_for(endpoint, id=chosen)) if chosen else None

    @action("credits", "Add or remove credits")
    def action_credits(self, ids):
        return self._bulk_form(".credits_view", ids, "credits")

    @action("ban", "Ban")
    def action_ban(self, ids):
        # The form that opens asks for the reason and confirms; nothing happens before it is sent.
        return self._bulk_form(".ban_view", ids, "ban")

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
