"""The one role-aware base for every admin view: who may read, create, edit, delete and act.

Roles: admin (everything), support (the views that name it), viewer (read-only), customer (403).
Anonymous visitors are sent to the login page. Every write through a ModelView is audited; malformed ids
answer 404; a return URL (?url=) that leaves our host is dropped; exports go through services/exports.py.
"""
import re

from flask import abort, flash, redirect, request, url_for
from flask_admin import AdminIndexView, BaseView
from flask_admin.contrib.sqla import ModelView
from flask_admin.form import BaseForm
from flask_login import current_user
from flask_wtf import FlaskForm
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from werkzeug.datastructures import ImmutableMultiDict

from app.admin import formatters
from app.extensions import db
from app.services import audit, exports, urls

ADMIN = frozenset({"admin"})
STAFF = frozenset({"admin", "support", "viewer"})
READERS = frozenset({"admin", "viewer"})
NOBODY = frozenset()


class SecureForm(BaseForm):
    """Flask-Admin forms carrying the same Flask-WTF CSRF token CSRFProtect checks site-wide."""

    class Meta(FlaskForm.Meta):
        pass


def current_role():
    """The signed-in user's role, or None (anonymous, or outside a request)."""
    from flask import has_request_context

    if not has_request_context() or not current_user.is_authenticated:
        return None
    return current_user.role


def deny():
    """Login page for anonymous visitors, 403 for a signed-in user without the role."""
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    abort(403)


class RoleAccess:
    """Read access by role; mixed into every admin view, model or not."""

    read_roles = READERS

    def is_accessible(self):
        return current_role() in self.read_roles

    def inaccessible_callback(self, name, **kwargs):
        return deny()


def _without_url(params):
    return ImmutableMultiDict([(k, v) for k, v in params.items(multi=True) if k != "url"])


def _drop_unsafe_return_url():
    """Flask-Admin goes back to ?url= after a save or delete; one that would leave our host is removed from
    the request before Flask-Admin reads it, so it falls back to the view's own list."""
    target = request.values.get("url")
    if target is None or urls.is_local(target):
        return
    request.args = _without_url(request.args)
    request.form = _without_url(request.form)
    request.__dict__.pop("values", None)  # recombined from args and form on next access


class ProtectedIndexView(RoleAccess, AdminIndexView):
    read_roles = STAFF


class RoleBaseView(RoleAccess, BaseView):
    pass


class RoleModelView(RoleAccess, ModelView):
    """CRUD whose create/edit/delete/actions follow the role sets below.

    `can_*` are per-request properties; Flask-Admin caches columns and forms at registration,
    when there is no request, so they then answer False safely.
    """

    form_base_class = SecureForm
    create_roles = ADMIN
    edit_roles = ADMIN
    delete_roles = ADMIN
    export_roles = NOBODY
    # Named actions (@action) → roles allowed to run them; the bulk "delete" follows delete_roles.
    action_roles: dict = {}
    can_view_details = True
    can_set_page_size = True
    page_size = 20
    column_display_pk = True
    column_default_sort = ("id", True)

    def __init__(self, model, database, **kwargs):
        # Secret columns (info={"secret": True}) never reach a list, a detail page, an export or a
        # generated form field; a view that edits one adds its own masked field.
        self._secret_columns = {
            attr.key for attr in sa.inspect(model).column_attrs if attr.columns[0].info.get("secret")
        }
        self.form_excluded_columns = tuple(self.form_excluded_columns or ()) + tuple(self._secret_columns)
        # Shared display formatters (times, sizes, money, statuses); a view's own formatters win.
        self.column_type_formatters = {**formatters.TYPE_FORMATTERS, **(self.column_type_formatters or {})}
        self.column_type_formatters_detail = {**formatters.DETAIL_TYPE_FORMATTERS,
                                              **(self.column_type_formatters_detail or {})}
        named = {**formatters.for_model(model), **(self.column_formatters or {})}
        self.column_formatters = named
        if self.column_formatters_detail is not None:
            self.column_formatters_detail = {**named, **self.column_formatters_detail}
        super().__init__(model, database, **kwargs)

    def _public(self, columns):
        return [c for c in columns if c[0] not in self._secret_columns]

    def get_list_columns(self):
        return self._public(super().get_list_columns())

    def get_details_columns(self):
        return self._public(super().get_details_columns())

    def get_export_columns(self):
        return self._public(super().get_export_columns())

    @property
    def can_create(self):
        return current_role() in self.create_roles

    @property
    def can_edit(self):
        return current_role() in self.edit_roles

    @property
    def can_delete(self):
        return current_role() in self.delete_roles

    @property
    def can_export(self):
        return current_role() in self.export_roles

    def is_action_allowed(self, name):
        if name == "delete":
            return self.can_delete
        return current_role() in self.action_roles.get(name, NOBODY)

    _guarded = {"create_view": "can_create", "edit_view": "can_edit", "delete_view": "can_delete",
                "export": "can_export", "ajax_update": "can_edit"}

    def _handle_view(self, name, **kwargs):
        denied = super()._handle_view(name, **kwargs)
        if denied is not None:
            return denied
        _drop_unsafe_return_url()
        # Flask-Admin would redirect a forbidden write back to the list; a clear 403 is honest.
        flag = self._guarded.get(name)
        if flag and not getattr(self, flag):
            abort(403)
        if name == "action_view" and request.method == "POST" and not self.is_action_allowed(
            request.form.get("action", "")
        ):
            abort(403)
        if name == "action_view" and not all(self._well_formed_id(i) for i in request.form.getlist("rowid")):
            abort(404)
        return None

    # --- ids: Flask-Admin splits ?id= on commas and hands any text to the database; refuse both shapes ---

    def _well_formed_id(self, value):
        (pk,) = sa.inspect(self.model).primary_key
        if not isinstance(value, str):
            return False  # ?id=1&id=2 arrives as a list
        if pk.type.python_type is int:
            return re.fullmatch(r"[0-9]{1,18}", value) is not None
        return "," not in value

    def get_one(self, id):
        if not self._well_formed_id(id):
            abort(404)
        return super().get_one(id)

    # --- exports: admin only by default per view (export_roles), always through services/exports.py ---
    # Exports carry stored values (numbers, datetimes, JSON); the service writes them per format, so the
    # list's display formatters (HTML badges, "9.99 USD") stay out of them.
    export_types = tuple(exports.FORMATS)
    column_formatters_export: dict = {}
    column_type_formatters_export: dict = {}

    def export_rows(self, query):
        """The export columns' values for each row of the query, read through a server-side cursor."""
        names = [name for name, _label in self._export_columns]
        for row in exports.streamed(query):
            yield [self.get_export_value(row, name) for name in names]

    def export_query(self, search=None, filters=None, sort=None, sort_desc=None):
        """The list's query with a search, Flask-Admin filters and a sort, as the list page builds it."""
        _count, query = self.get_list(0, sort, sort_desc, search, filters, page_size=self.export_max_rows,
                                      execute=False)
        return query

    def export_lines(self, fmt, query, filters, actor):
        """The export of this list (audited by the service), one line at a time."""
        return exports.export(self.endpoint, fmt, self._export_columns, self.export_rows(query), filters, actor)

    def _export(self, fmt):
        args = self._get_list_extra_args()
        sort = self._get_column_by_idx(args.sort)
        query = self.export_query(args.search, args.filters, sort[0] if sort else None, args.sort_desc)
        shown = {"search": args.search or None, "sort": sort[0] if sort else None, "desc": bool(args.sort_desc),
                 "filters": [[name, str(self._filters[idx].operation()), value]
                             for idx, name, value in args.filters or ()]}
        lines = self.export_lines(fmt, query, shown, current_user._get_current_object())
        return exports.response(self.get_export_name(fmt), fmt, lines)

    def _export_csv(self, return_url):
        return self._export("csv")

    def _export_tablib(self, export_type, return_url):
        return self._export(export_type)

    # --- audit: rows join the same transaction as the change they describe ---

    @property
    def entity(self):
        return self.model.__name__

    def on_model_change(self, form, model, is_created):
        if is_created:
            db.session.flush()
            audit.record("create", self.entity, model.id, new={**audit.snapshot(model), **audit.relations(model)})
        else:
            old, new = audit.changes(model)
            if new:
                audit.record("update", self.entity, model.id, old=old, new=new)

    def on_model_delete(self, model):
        audit.record("delete", self.entity, model.id, old=audit.snapshot(model))

    def handle_view_exception(self, exc):
        if isinstance(exc, IntegrityError):
            # The database constraint that refused the change says what went wrong.
            flash(
                "Not saved: this conflicts with existing data (a key or name already in use, "
                "or other records still refer to this one). "
                f"Details: {getattr(exc.orig, 'diag', None) and exc.orig.diag.message_primary or exc.orig}",
                "error",
            )
            return True
        return super().handle_view_exception(exc)


class ReadOnlyModelView(RoleModelView):
    """Lists and details only, for history tables (jobs, ledger, audit)."""

    create_roles = edit_roles = delete_roles = NOBODY
