"""Admin view for users: staff and customers. Support edits users but never their role."""
from wtforms import PasswordField
from wtforms.validators import Length, Optional

from app.admin.base import ADMIN, STAFF, RoleModelView, current_role
from app.models.users import ROLES


class UserView(RoleModelView):
    read_roles = STAFF
    edit_roles = frozenset({"admin", "support"})
    column_list = ("id", "email", "role", "balance", "plan", "is_banned", "created_at", "last_login_at")
    column_searchable_list = ("email",)
    column_filters = ("role", "is_banned", "plan.name", "balance", "created_at", "last_login_at")
    column_sortable_list = ("id", "email", "role", "balance", "is_banned", "created_at", "last_login_at")
    column_labels = {"is_banned": "Banned", "last_login_at": "Last login"}
    form_columns = ("email", "new_password", "role", "plan", "is_banned", "ban_reason")
    form_choices = {"role": [(r, r.capitalize()) for r in ROLES]}
    form_extra_fields = {
        "new_password": PasswordField(
            "Password", validators=[Optional(), Length(min=8, max=128)],
            description="At least 8 characters. On edit, leave empty to keep the current password.",
        )
    }
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
        if form.new_password.data:
            model.set_password(form.new_password.data)
        elif is_created:
            raise ValueError("A new user needs a password.")
        super().on_model_change(form, model, is_created)
