"""Admin page "Backups" (admin only): make one now, list past ones, download (streamed) and delete them.

Every write and download goes through app/services/backup.py, which commits and audits.
"""
from flask import Response, abort, flash, redirect, request, stream_with_context, url_for
from flask_admin import expose
from flask_admin.model import template
from flask_login import current_user
from markupsafe import Markup

from app.admin.base import ADMIN, NOBODY, RoleModelView
from app.services import backup, settings

STATUS_BADGES = {"ok": "success", "failed": "danger", "running": "info", "queued": "secondary"}


def _status(_view, _context, row, _name):
    badge = Markup('<span class="badge badge-{}">{}</span>').format(STATUS_BADGES.get(row.status, "light"), row.status)
    return badge + (Markup(' <small class="text-danger">{}</small>').format(row.error) if row.error else "")


def _row_counts(_view, _context, row, _name):
    lines = Markup("").join(Markup("<tr><td>{}</td><td class=\"text-right\">{}</td></tr>").format(name, count)
                            for name, count in (row.row_counts or {}).items())
    return Markup('<table class="table table-sm w-auto"><tbody>{}</tbody></table>').format(lines)


class BackupView(RoleModelView):
    read_roles = create_roles = delete_roles = ADMIN
    edit_roles = NOBODY
    can_view_details = True
    column_default_sort = ("created_at", True)
    column_list = ("created_at", "name", "status", "trigger", "destination", "with_files", "size_bytes",
                   "total_rows", "finished_at")
    column_details_list = ("name", "status", "trigger", "destination", "with_files", "size_bytes", "row_counts",
                           "alembic_revision", "ref", "requested_by", "created_at", "finished_at", "error")
    column_labels = {"size_bytes": "Size", "total_rows": "Rows", "row_counts": "Rows per table",
                     "with_files": "Files", "alembic_revision": "Revision", "ref": "Stored at"}
    column_formatters = {"status": _status,
                         "size_bytes": lambda _v, _c, row, _n: backup.human_size(row.size_bytes),
                         "total_rows": lambda _v, _c, row, _n: row.total_rows if row.row_counts else ""}
    column_formatters_detail = {**column_formatters, "row_counts": _row_counts}
    column_filters = ("status", "trigger", "created_at")

    def get_list_row_actions(self):
        # A confirmation page instead of the list's inline-script confirm, and a download link.
        actions = [a for a in super().get_list_row_actions() if not isinstance(a, template.DeleteRowAction)]
        actions.append(template.EndpointLinkRowAction("fa fa-download", ".download", title="Download"))
        if self.can_delete:
            actions.append(template.EndpointLinkRowAction("fa fa-trash", ".confirm_delete", title="Delete"))
        return actions

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self):
        list_url = self.get_url(".index_view")
        if request.method == "POST":
            try:
                made = backup.make_in_background(current_user, with_files=bool(request.form.get("with_files")),
                                                 destination=request.form.get("destination") or None)
            except backup.BackupError as exc:
                flash(str(exc), "error")
            else:
                flash(f"Backup {made.name} is being made; this list shows when it is ready.", "success")
                return redirect(list_url)
        return self.render("admin/backup_create.html", destinations=settings.REGISTRY["backups.destination"],
                           destination=settings.get("backups.destination"), list_url=list_url)

    @expose("/delete/confirm/")
    def confirm_delete(self):
        if not self.can_delete:
            abort(403)
        row = self.get_one(request.args.get("id", ""))
        if row is None:
            abort(404)
        return self.render("admin/backup_delete.html", row=row, size=backup.human_size(row.size_bytes),
                           list_url=self.get_url(".index_view"))

    def delete_model(self, model):
        try:
            backup.delete(model.id, actor=current_user)
        except backup.BackupError as exc:
            flash(str(exc), "error")
            return False
        return True

    @expose("/download/")
    def download(self):
        try:
            row, chunks = backup.download(int(request.args.get("id", "0") or 0), actor=current_user)
        except (backup.BackupError, ValueError) as exc:
            flash(str(exc) if isinstance(exc, backup.BackupError) else "No such backup.", "error")
            return redirect(url_for(".index_view"))
        headers = {"Content-Disposition": f'attachment; filename="{row.name}"', "X-Content-Type-Options": "nosniff",
                   "Cache-Control": "no-store"}
        if row.size_bytes is not None:
            headers["Content-Length"] = str(row.size_bytes)
        return Response(stream_with_context(chunks), mimetype="application/zip", headers=headers)
