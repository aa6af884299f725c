"""Admin page for runtime settings: grouped, typed inputs; secrets masked; only an admin may save.

Viewers read every value with secrets masked; support does not see settings at all (READERS).
"""
from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user

from app.admin.base import ADMIN, READERS, RoleBaseView, current_role
from app.services import accounts, allowlist, mail, settings, storage


class SettingsView(RoleBaseView):
    read_roles = READERS
    edit_roles = ADMIN

    @property
    def can_edit(self):
        return current_role() in self.edit_roles

    @expose("/", methods=["GET", "POST"])
    def index(self):
        errors, entered = {}, {}
        if request.method == "POST":
            if not self.can_edit:
                abort(403)
            try:
                values = settings.parse_form(request.form)
                allowlist.check_saver_admitted(values, request.remote_addr)
                self._check_storage(values)
                changed = settings.update(values)
            except settings.SettingError as exc:
                errors = exc.errors
                # Re-show what was typed, except secrets (never echoed back to the page).
                entered = {d.key: request.form.get(d.key, "") for d in settings.DEFINITIONS
                           if not d.secret and d.kind.input not in ("checkbox", "function-pages")}
                flash("Not saved: correct the fields marked below.", "error")
            else:
                flash(f"Saved {len(changed)} change(s); every server uses them from its next request or job."
                      if changed else "Nothing changed.", "success")
                return redirect(url_for(".index"))
        return self.render("admin/settings.html", groups=settings.for_display(), errors=errors, entered=entered,
                           functions=settings.function_choices(), can_edit=self.can_edit), 400 if errors else 200

    @expose("/test-email", methods=["POST"])
    def test_email(self):
        """Send a message now through the saved SMTP settings, to the address given (the admin's by default)."""
        if not self.can_edit:
            abort(403)
        actor = current_user._get_current_object()
        to = (request.form.get("to") or "").strip() or actor.email
        try:
            to = accounts.normalise_email(to)
            mail.send_test(actor, to)
        except (accounts.AccountError, mail.MailError) as exc:
            flash(f"The test email was not sent: {exc}", "error")
        else:
            flash(f"Test email sent to {to}. Check that it arrived.", "success")
        return redirect(url_for(".index") + "#group-email")

    @staticmethod
    def _check_storage(values):
        try:
            storage.check_settings(values)
        except storage.StorageError as exc:
            raise settings.SettingError({"storage.backend": f"S3 check failed, so nothing was saved: {exc}"}) from None
