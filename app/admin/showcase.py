"""Admin for the public gallery content: the prompt gallery and landing examples (CRUD, audited by the base
view), and Moderation — the showcase grid, the report queue and their bulk actions (services.showcase)."""
from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_admin.form.upload import FileUploadInput
from flask_login import current_user
from markupsafe import Markup
from wtforms import FileField
from wtforms.validators import DataRequired, Length, ValidationError

from app.admin.base import STAFF, RoleBaseView, RoleModelView, current_role
from app.extensions import db
from app.models.showcase import PROMPT_CATEGORIES
from app.services import gallery, permissions, showcase, urls
from app.site.showcase import image_response


def _image_check(required=False):
    def check(_form, field):
        upload = field.data
        data = upload.read() if upload and hasattr(upload, "read") else b""
        if upload and hasattr(upload, "seek"):
            upload.seek(0)
        if not data:
            if required:
                raise ValidationError("Upload an image (PNG, JPEG or WebP).")
            return
        try:
            gallery.check_image(data)
        except gallery.ImageRefused as exc:
            raise ValidationError(str(exc)) from None
    return check


def _uploaded(field):
    """(ref, content type) of the form's new image, stored now; None when no file was chosen."""
    upload = field.data
    data = upload.read() if upload and hasattr(upload, "read") else b""
    return gallery.store_image(data) if data else None


def _tags(_form, field):
    try:
        field.data = gallery.clean_tags(field.data)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def _thumb(url):
    """A list cell showing a stored image through its public route; `url(model)` gives the address or None."""
    def formatter(_view, _context, model, _name):
        address = url(model)
        if not address:
            return "—"
        return Markup('<img src="{}" alt="" class="admin-thumb" width="64" height="64">').format(address)
    return formatter


class PromptView(RoleModelView):
    column_list = ("preview_ref", "title", "category", "function", "tags", "is_featured", "is_published",
                   "sort_order", "usage_count")
    column_labels = {"preview_ref": "Preview", "prompt_text": "Prompt text", "is_featured": "Featured",
                     "is_published": "Published", "sort_order": "Sort order", "usage_count": "Uses"}
    column_searchable_list = ("title", "prompt_text", "tags")
    column_filters = ("category", "is_featured", "is_published", "function.key")
    column_sortable_list = ("title", "category", "sort_order", "usage_count", "is_featured", "is_published")
    column_default_sort = [("sort_order", False), ("id", False)]
    column_formatters = {"preview_ref": _thumb(lambda m: m.preview_ref and url_for("site.prompt_image",
                                                                                   prompt_id=m.id))}
    column_details_exclude_list = ("preview_ref", "preview_content_type")
    form_columns = ("title", "prompt_text", "category", "tags", "function", "preview_image", "is_featured",
                    "is_published", "sort_order")
    form_choices = {"category": list(PROMPT_CATEGORIES)}
    form_extra_fields = {"preview_image": FileField("Preview image", widget=FileUploadInput(),
                                                    validators=[_image_check()])}
    form_args = {
        "title": {"validators": [DataRequired(), Length(max=255)]},
        "prompt_text": {"validators": [DataRequired(), Length(max=gallery.MAX_PROMPT_LENGTH)],
                        "description": "Filled into the tool's prompt field when a visitor clicks “Use this”."},
        "tags": {"validators": [_tags], "description": "Comma-separated, e.g. portrait, vintage, black-and-white."},
        "function": {"description": "The tool “Use this” opens. Without one the prompt is shown without the button."},
        "sort_order": {"description": "Lower numbers first; featured prompts come before the rest."},
        "is_published": {"description": "Unpublished prompts are not on /prompts and cannot be used."},
    }
    form_widget_args = {"prompt_text": {"rows": 6}}

    def on_model_change(self, form, model, is_created):
        stored = _uploaded(form.preview_image)
        if stored:
            model.preview_ref, model.preview_content_type = stored
        super().on_model_change(form, model, is_created)


class LandingExampleView(RoleModelView):
    column_list = ("after_ref", "title", "function", "is_published", "sort_order")
    column_labels = {"after_ref": "Images", "is_published": "Published", "sort_order": "Sort order"}
    column_default_sort = [("sort_order", False), ("id", False)]
    column_formatters = {"after_ref": _thumb(lambda m: m.after_ref and url_for("site.example_image",
                                                                               example_id=m.id, which="after"))}
    column_details_exclude_list = ("before_ref", "after_ref", "before_content_type", "after_content_type")
    form_columns = ("title", "caption", "function", "before_image", "after_image", "is_published", "sort_order")
    form_args = {
        "title": {"validators": [DataRequired(), Length(max=120)]},
        "caption": {"validators": [Length(max=300)], "description": "One sentence under the pair (optional)."},
        "function": {"description": "The tool the pair shows; its “after” image also illustrates that tool's card."},
    }

    def _with_uploads(self, form, required):
        for name, label in (("before_image", "“Before” image"), ("after_image", "“After” image")):
            field = getattr(form, name)
            field.validators = [_image_check(required)]
            field.description = f"{label}: PNG, JPEG or WebP." + ("" if required else " Leave empty to keep it.")
        return form

    form_extra_fields = {"before_image": FileField("Before image", widget=FileUploadInput()),
                         "after_image": FileField("After image", widget=FileUploadInput())}

    def create_form(self, obj=None):
        return self._with_uploads(super().create_form(obj), True)

    def edit_form(self, obj=None):
        return self._with_uploads(super().edit_form(obj), False)

    def on_model_change(self, form, model, is_created):
        for which in ("before", "after"):
            stored = _uploaded(getattr(form, f"{which}_image"))
            if stored:
                setattr(model, f"{which}_ref", stored[0])
                setattr(model, f"{which}_content_type", stored[1])
        super().on_model_change(form, model, is_created)


class ModerationView(RoleBaseView):
    """The showcase as thumbnails: filters, bulk blur/unblur/delete/restore/dismiss, ban the creator, and the
    report queue (most reported first). Admin and support act (support on customers' items); viewers look."""

    read_roles = STAFF

    @property
    def can_act(self):
        return current_role() in permissions.MODERATOR_ROLES

    def _grid(self, queue):
        filters = showcase.moderation_filters(request.args)
        page = showcase.moderation_page(filters, max(request.args.get("page", 1, type=int), 1), queue=queue)
        reasons = showcase.pending_reasons([item.id for item in page.items])
        args = {k: v for k, v in filters.items() if v}
        return self.render("admin/moderation.html", items=page, filters=filters, filter_args=args, queue=queue,
                           reasons=reasons, can_act=self.can_act, actions=showcase.ACTIONS)

    @expose("/")
    def index(self):
        return self._grid(queue=False)

    @expose("/reports")
    def reports(self):
        return self._grid(queue=True)

    def _back(self):
        target = request.form.get("next") or ""
        return redirect(target if target and urls.is_local(target) else url_for(".index"))

    def _selected(self):
        ids = request.form.getlist("item")
        if not all(i.isdigit() and len(i) <= 18 for i in ids):
            abort(404)
        return ids

    @expose("/act", methods=["POST"])
    def act(self):
        if not self.can_act:
            abort(403)
        try:
            changed = showcase.moderate(current_user._get_current_object(), self._selected(),
                                        request.form.get("action", ""))
        except showcase.ShowcaseError as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            flash(f"{request.form.get('action', '').capitalize()}: {changed} item(s) changed.", "success")
        return self._back()

    @expose("/ban", methods=["POST"])
    def ban(self):
        if not self.can_act:
            abort(403)
        try:
            banned, refused = showcase.ban_creators(current_user._get_current_object(), self._selected(),
                                                    request.form.get("reason"))
        except showcase.ShowcaseError as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            if banned:
                flash(f"Banned: {', '.join(banned)}.", "success")
            for message in refused:
                flash(f"Not banned: {message}", "error")
            if not banned and not refused:
                flash("The selected creators were already banned.", "info")
        return self._back()

    @expose("/image/<int:item_id>")
    def image(self, item_id):
        found = showcase.staff_image(item_id)
        if found is None:
            abort(404)
        return image_response(data=found[0], content_type=found[1], name=f"showcase-{item_id}", cache="private, no-store")
