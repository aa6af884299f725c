"""Read-only admin views over history: jobs and the audit log."""
from app.admin.base import STAFF, ReadOnlyModelView


class JobView(ReadOnlyModelView):
    read_roles = STAFF
    column_list = ("id", "created_at", "user", "function_key", "provider_key", "status", "credits_charged",
                   "refunded", "attempts", "finished_at")
    column_searchable_list = ("user.email", "function_key")
    column_filters = ("status", "function_key", "provider_key", "user.email", "created_at")
    column_labels = {"function_key": "Function", "provider_key": "Provider"}


class AuditLogView(ReadOnlyModelView):
    column_list = ("created_at", "actor_email", "action", "entity", "entity_id", "ip")
    column_details_list = ("created_at", "actor_email", "action", "entity", "entity_id", "old_values",
                           "new_values", "ip", "user_agent")
    column_searchable_list = ("actor_email", "entity", "entity_id")
    column_filters = ("action", "entity", "actor_email", "created_at")
    column_labels = {"actor_email": "Who", "entity_id": "Id", "ip": "IP"}
