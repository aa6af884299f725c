"""Admin views for plans, payments and the credit ledger (read-only: it is append-only)."""
from app.admin.base import NOBODY, STAFF, ReadOnlyModelView, RoleModelView
from app.models.billing import PAYMENT_PROVIDERS, PAYMENT_STATUSES, PLAN_KIND_LABELS


class PlanView(RoleModelView):
    column_list = ("name", "kind", "price", "currency", "credits", "hidden", "stripe_price_id", "sort_order")
    column_searchable_list = ("name",)
    column_filters = ("kind", "hidden", "currency", "created_at")
    column_formatters = {"price": lambda _v, _c, m, _n: m.price_display}
    column_labels = {"price": "Price", "stripe_price_id": "Stripe price id"}
    form_columns = ("name", "description", "kind", "price", "currency", "credits", "limits", "hidden",
                    "stripe_price_id", "sort_order")
    form_choices = {"kind": list(PLAN_KIND_LABELS.items())}
    form_args = {
        "price": {"description": "In minor units: 999 is 9.99."},
        "credits": {"description": "Credits granted per purchase (pack) or per period (subscription)."},
        "hidden": {"description": "Hidden plans are not on /pricing; an admin assigns them (B2B)."},
        "limits": {"description": 'JSON, e.g. {"jobs_per_day": 100, "max_file_size": 20971520}.'},
    }


class PaymentView(RoleModelView):
    """Payments are history: they are recorded and corrected, never deleted."""

    read_roles = STAFF
    delete_roles = NOBODY
    column_list = ("id", "created_at", "user", "provider", "status", "amount", "credits", "plan_name", "external_id")
    column_searchable_list = ("external_id", "user.email")
    column_filters = ("provider", "status", "currency", "created_at", "user.email")
    column_formatters = {"amount": lambda _v, _c, m, _n: m.amount_display}
    form_columns = ("user", "plan", "provider", "status", "amount", "currency", "credits", "external_id", "note")
    form_choices = {"provider": [(p, p.capitalize()) for p in PAYMENT_PROVIDERS],
                    "status": [(s, s.capitalize()) for s in PAYMENT_STATUSES]}
    form_ajax_refs = {"user": {"fields": ("email",), "page_size": 10}, "plan": {"fields": ("name",)}}
    form_args = {"amount": {"description": "In minor units: 999 is 9.99."}}

    def on_model_change(self, form, model, is_created):
        if model.plan is not None:
            model.plan_name = model.plan.name
        super().on_model_change(form, model, is_created)


class CreditLedgerView(ReadOnlyModelView):
    read_roles = STAFF
    column_list = ("id", "created_at", "user", "amount", "balance_after", "kind", "reason", "actor", "job_id",
                   "payment_id")
    column_searchable_list = ("user.email", "reason")
    column_filters = ("kind", "created_at", "user.email", "amount")
