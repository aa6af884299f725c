"""Admin page for email templates: every message the app sends, edited per language, with a preview and a test send.

Admins edit, viewers read, support has no access (READERS). The rules (sandbox, checks, fallback) live in
services/mail_templates.py; this view parses the form and renders the answer.
"""
from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user

from app.admin.base import ADMIN, READERS, RoleBaseView, current_role
from app.services import mail, mail_templates, settings


class EmailTemplateView(RoleBaseView):
    read_roles = READERS
    edit_roles = ADMIN

    @property
    def can_edit(self):
        return current_role() in self.edit_roles

    @expose("/")
    def index(self):
        return self.render("admin/email_templates.html", messages=mail_templates.overview(),
                           default_language=settings.get("site.default_language"), can_edit=self.can_edit)

    @expose("/open", methods=["GET"])
    def open(self):
        """The list's "edit in another language" form: a language code typed by the owner."""
        name, language = request.args.get("name", ""), (request.args.get("language") or "").strip().lower()
        if name not in mail.templates():
            abort(404)
        if not mail_templates.LANGUAGE.fullmatch(language):
            flash("Use a language code such as en, de or pt-br.", "error")
            return redirect(url_for(".index"))
        return redirect(url_for(".edit", message=name, language=language))

    @expose("/<message>/<language>", methods=["GET", "POST"])
    def edit(self, message, language):
        name = message
        if name not in mail.templates() or not mail_templates.LANGUAGE.fullmatch(language):
            abort(404)
        values, row = mail_templates.current(name, language)
        errors, status, rendered = {}, 200, None
        if request.method == "POST":
            if not self.can_edit:
                abort(403)
            values = {part: request.form.get(part, "") for part in mail_templates.PARTS}
            act = request.form.get("act", "save")
            try:
                if act == "preview":
                    rendered = mail_templates.preview(name, values)
                elif act == "test":
                    mail_templates.send_test(current_user._get_current_object(), name, language, values)
                    flash(f"Test email sent to {current_user.email} with sample values. Check that it arrived.",
                          "success")
                    rendered = mail_templates.preview(name, values)
                else:
                    mail_templates.save(current_user._get_current_object(), name, language, values)
                    flash(f"Saved: {name} in {language} is used from the next email.", "success")
                    return redirect(url_for(".edit", message=name, language=language))
            except mail_templates.TemplateProblem as exc:
                errors, status = exc.errors, 400
                flash("Not saved or sent: correct the parts marked below.", "error")
            except mail.MailError as exc:
                flash(f"The test email was not sent: {exc}", "error")
        if rendered is None and not errors:
            try:
                rendered = mail_templates.preview(name, values)
            except mail_templates.TemplateProblem as exc:
                errors = exc.errors  # a template saved before a variable it used went away
        return self.render("admin/email_template_edit.html", name=name, language=language, values=values, row=row,
                           errors=errors, rendered=rendered, variables=mail_templates.offered(name),
                           can_edit=self.can_edit), status

    @expose("/<message>/<language>/reset", methods=["POST"])
    def reset(self, message, language):
        name = message
        if not self.can_edit:
            abort(403)
        if name not in mail.templates() or not mail_templates.LANGUAGE.fullmatch(language):
            abort(404)
        if mail_templates.reset(current_user._get_current_object(), name, language):
            flash(f"{name} in {language} is back to the shipped default.", "success")
        else:
            flash(f"{name} in {language} was not customised: nothing to reset.", "info")
        return redirect(url_for(".edit", message=name, language=language))
