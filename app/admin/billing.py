"""Admin views for plans, orders and payments (read-only history, payments needing review among them) and the
credit ledger (read-only: it is append-only)."""
from flask import flash
from markupsafe import Markup
from flask_login import current_user
from wtforms.validators import DataRequired

from app.admin.base import ADMIN, NOBODY, STAFF, ReadOnlyModelView, RoleModelView
from app.admin.fields import PlanLimitsField
from app.extensions import db
from app.models.billing import PLAN_KIND_LABELS
from app.services import payments


class PlanView(RoleModelView):
    column_list = ("name", "kind", "price", "credits", "hidden", "stripe_price_id", "sort_order")
    column_searchable_list = ("name",)
    column_filters = ("kind", "hidden", "currency", "created_at")
    column_labels = {"price": "Price", "stripe_price_id": "Stripe price id"}
    form_columns = ("name", "description", "kind", "price", "currency", "credits", "limits", "hidden",
                    "stripe_price_id", "sort_order")
    form_choices = {"kind": list(PLAN_KIND_LABELS.items())}
    form_overrides = {"limits": PlanLimitsField}
    form_args = {
        "price": {"description": "In minor units: 999 is 9.99."},
        "credits": {"description": "Credits granted per purchase (pack) or per period (subscription)."},
        "hidden": {"description": "Hidden plans are not on /pricing; an admin assigns them (B2B)."},
        "limits": {"description": "Each row sets one limit for customers on this plan; no row, no extra limit. "
                                  "20 MB is 20971520 bytes."},
    }


def _gateway_link(_view, _context, payment, _name):
    """The gateway's id, linked to the payment's page in that gateway's dashboard where there is one."""
    url = payments.payment_dashboard_url(payment)
    if not url:
        return payment.external_id or ""
    return Markup('<a href="{}" target="_blank" rel="noopener noreferrer">{}</a>').format(url, payment.external_id)


class PaymentView(RoleModelView):
    """Payments are history: gateways record theirs; an admin records manual ones (credited at once) and
    may annotate any. Nothing is deleted, and amounts never change after the fact."""

    read_roles = STAFF
    delete_roles = NOBODY
    export_roles = ADMIN
    column_list = ("id", "created_at", "user", "provider", "status", "amount", "credits", "refunded_credits",
                   "plan_name", "order_id", "external_id", "review_reason")
    column_searchable_list = ("external_id", "user.email", "review_reason")
    column_filters = ("provider", "status", "currency", "created_at", "user.email", "amount", "order_id",
                      "review_reason")
    column_export_list = ("id", "created_at", "user", "provider", "status", "amount", "currency", "credits",
                          "refunded_credits", "plan_name", "order_id", "external_id", "review_reason")
    column_labels = {"refunded_credits": "Credits taken back", "plan_name": "Plan", "order_id": "Order",
                     "review_reason": "Needs review because", "external_id": "Gateway id"}
    column_formatters = {"external_id": _gateway_link}
    column_descriptions = {"status": "review: money that matched no pending order of ours, or not its amount; "
                                     "nothing was credited. Record a manual payment to credit it."}
    form_create_rules = ("user", "plan", "amount", "currency", "credits", "note")
    form_edit_rules = ("note",)
    form_columns = ("user", "plan", "amount", "currency", "credits", "note")
    form_ajax_refs = {"user": {"fields": ("email",), "page_size": 10}, "plan": {"fields": ("name",)}}
    form_args = {"amount": {"description": "Received, in minor units: 999 is 9.99."},
                 "credits": {"description": "Credited to the user at once (leave 0 to use the plan's credits)."},
                 "user": {"validators": [DataRequired()]}}

    def create_model(self, form):
        """A manual payment goes through services.payments: recorded, credited once, audited."""
        try:
            plan = form.plan.data
            payment = payments.record_manual(
                form.user.data, plan, form.amount.data or 0, form.currency.data or "USD",
                form.credits.data or (plan.credits if plan else 0), form.note.data, current_user)
            return payment
        except Exception as exc:
            db.session.rollback()
            if not self.handle_view_exception(exc):
                flash(f"Payment not recorded: {exc}", "error")
            return False


class OrderView(ReadOnlyModelView):
    """Orders are written by services.payments before the buyer goes to the gateway; staff read them."""

    read_roles = STAFF
    export_roles = ADMIN
    column_list = ("id", "created_at", "user", "plan_name", "gateway", "status", "amount", "credits",
                   "gateway_reference", "paid_at", "error")
    column_searchable_list = ("gateway_reference", "user.email")
    column_filters = ("gateway", "status", "currency", "created_at", "paid_at", "user.email", "plan_name")
    column_labels = {"plan_name": "Plan", "gateway_reference": "Gateway reference", "error": "Gateway error"}


class CreditLedgerView(ReadOnlyModelView):
    read_roles = STAFF
    export_roles = ADMIN
    simple_list_pager = True  # append-only and ever growing: no COUNT(*)
    column_list = ("id", "created_at", "user", "amount", "balance_after", "kind", "reason", "actor", "job_id",
                   "payment_id")
    column_searchable_list = ("user.email", "reason")
    column_filters = ("kind", "created_at", "user.email", "amount")
