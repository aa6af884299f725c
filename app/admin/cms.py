"""Admin view for site pages: a WYSIWYG editor switchable to raw HTML, translations as rows of language, field and
text, sanitized on save.

The allow-list and slug rules live in services/cms.py; this view only wires them to the form.
"""
import json

from flask import url_for
from markupsafe import Markup
from wtforms.validators import DataRequired, ValidationError

from app.admin.base import RoleModelView
from app.admin.fields import TranslationsField
from app.services import cms


def _slug(_form, field):
    field.data = (field.data or "").strip().lower()
    if field.data == field.object_data:
        return  # unchanged: a page whose slug a later app route took can still be edited
    problem = cms.slug_problem(field.data)
    if problem:
        raise ValidationError(problem)


def _link(_view, _context, model, _name):
    label = "open" if model.is_published else "preview"
    return Markup('<a href="{}" target="_blank" rel="noopener">/{}</a> <small class="text-muted">{}</small>').format(
        url_for("site.page", slug=model.slug), model.slug, label)


def _languages(_view, _context, model, _name):
    return ", ".join(sorted(model.translations or {})) or "—"


class PageView(RoleModelView):
    create_template = "admin/page_create.html"
    edit_template = "admin/page_edit.html"
    column_list = ("slug", "title", "is_published", "translations", "updated_at")
    column_searchable_list = ("slug", "title")
    column_filters = ("is_published", "updated_at")
    column_editable_list = ("is_published",)
    column_labels = {"is_published": "Published", "translations": "Translations", "html_content": "Content",
                     "seo_title": "SEO title", "seo_description": "SEO description"}
    column_formatters = {"slug": _link, "translations": _languages}
    column_formatters_detail = {
        "translations": lambda _v, _c, m, _n: Markup("<pre>{}</pre>").format(
            json.dumps(m.translations or {}, indent=2, ensure_ascii=False)),
    }
    form_columns = ("slug", "title", "html_content", "seo_title", "seo_description", "is_published", "translations")
    form_overrides = {"translations": TranslationsField}
    form_args = {
        "slug": {"validators": [DataRequired(), _slug],
                 "description": "The page's address: /about-us for about-us. Lower-case letters, digits, hyphens."},
        "title": {"validators": [DataRequired()]},
        "html_content": {"description": "Scripts, event handlers, javascript: links, embeds and unsafe styles are "
                                        "removed on save (see the allow-list in app/services/cms.py)."},
        "seo_title": {"description": "The browser tab and search result title; the page title when empty."},
        "seo_description": {"description": "Shown under the title in search results and link previews."},
        "is_published": {"description": "Unpublished pages answer 404 to the public; staff see a preview."},
        "translations": {"description": "One row per language code (de, fr, pt-br) and field; a field left out "
                                        "falls back to the main fields above, which are the default language "
                                        "(Settings → Site)."},
    }

    def _decorate(self, form):
        form.html_content.render_kw = {**(form.html_content.render_kw or {}), "data-html-editor": "", "rows": 18}
        return form

    def create_form(self, obj=None):
        return self._decorate(super().create_form(obj))

    def edit_form(self, obj=None):
        return self._decorate(super().edit_form(obj))

    def on_model_change(self, form, model, is_created):
        cms.prepare(model)
        super().on_model_change(form, model, is_created)
