"""Admin views for coupons (redemption codes): create and edit one, bulk-generate up to 1,000, export them as CSV,
and the read-only list of their uses. Only an admin changes or exports codes; a viewer reads."""
from datetime import datetime, timezone

from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user
from wtforms.validators import ValidationError

from app.admin.base import ADMIN, ReadOnlyModelView, RoleModelView, current_role
from app.extensions import db
from app.models import Plan
from app.models.coupons import COUPON_KINDS
from app.services import coupons, exports

KIND_LABELS = {"credits": "Credits (redeemed on /account)", "percent": "Percent off a plan (at checkout)"}


class CouponView(RoleModelView):
    list_template = "admin/coupon_list.html"
    column_list = ("code", "kind", "credits", "percent_off", "plan", "uses", "max_uses", "expires_at", "enabled",
                   "batch", "created_at")
    column_searchable_list = ("code", "batch")
    column_filters = ("kind", "enabled", "batch", "expires_at", "created_at")
    column_labels = {"percent_off": "% off", "max_uses": "Max uses"}
    form_columns = ("code", "kind", "credits", "percent_off", "plan", "max_uses", "expires_at", "enabled")
    form_choices = {"kind": [(k, KIND_LABELS[k]) for k in COUPON_KINDS]}
    form_args = {
        "code": {"description": "Letters, digits and dashes; stored upper case."},
        "credits": {"description": "For a credits code: credits added once per customer."},
        "percent_off": {"description": "For a percent-off code: 1 to 100, taken off the order's price."},
        "plan": {"description": "For a percent-off code: only this plan (empty: any plan)."},
        "max_uses": {"description": "Uses in all, by different customers (each customer once). Empty: no limit."},
    }
    form_ajax_refs = {"plan": {"fields": ("name",), "page_size": 10}}

    def on_model_change(self, form, model, is_created):
        try:
            coupons.check(model)
        except coupons.CouponError as exc:
            raise ValidationError(str(exc)) from None
        super().on_model_change(form, model, is_created)

    def render(self, template, **kwargs):
        kwargs.setdefault("may_generate", current_role() in ADMIN)
        return super().render(template, **kwargs)

    @expose("/generate", methods=["GET", "POST"])
    def generate_view(self):
        """Bulk generation: random codes sharing a prefix and terms; then their CSV."""
        if current_role() not in ADMIN:
            abort(403)
        error, form = None, request.form
        if request.method == "POST":
            try:
                batch = coupons.generate(
                    current_user._get_current_object(), count=_int(form, "count", 1), prefix=form.get("prefix", ""),
                    kind=form.get("kind") if form.get("kind") in COUPON_KINDS else "credits",
                    credits_each=_int(form, "credits", 0), percent_off=_int(form, "percent_off", 0),
                    plan_id=_int(form, "plan_id", None), max_uses=_int(form, "max_uses", None),
                    expires_at=_date(form, "expires_at"))
            except coupons.CouponError as exc:
                db.session.rollback()
                error = str(exc)
            else:
                flash(f"Codes generated (batch {batch}).", "success")
                return redirect(url_for(".index_view", flt0_batch_equals=batch, batch=batch))
        plans = db.session.query(Plan).order_by(Plan.name).all()
        return self.render("admin/coupon_generate.html", error=error, form=form, plans=plans, kinds=KIND_LABELS,
                           maximum=coupons.MAX_BULK), 400 if error else 200

    @expose("/export-codes")
    def export_codes_view(self):
        """The codes as CSV (all, or one batch), through the shared spreadsheet-safe writer."""
        if current_role() not in ADMIN:
            abort(403)
        batch = request.args.get("batch") or None
        lines = exports.export("coupons", "csv", [(name, name) for name in coupons.CSV_HEADER],
                               coupons.csv_rows(batch), {"batch": batch}, actor=current_user._get_current_object())
        return exports.response(f"coupons-{batch or 'all'}.csv", "csv", lines)


def _int(form, name, default):
    raw = (form.get(name) or "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise coupons.CouponError(f"{name.replace('_', ' ').capitalize()} must be a whole number.") from None


def _date(form, name):
    raw = (form.get(name) or "").strip()
    if not raw:
        return None
    try:
        return datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        raise coupons.CouponError("Give the expiry date as YYYY-MM-DD.") from None


class CouponRedemptionView(ReadOnlyModelView):
    column_list = ("created_at", "coupon", "user", "order_id")
    column_filters = ("created_at", "coupon.code", "user.email")
    column_searchable_list = ("user.email",)
    column_labels = {"order_id": "Order"}
