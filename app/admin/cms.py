"""Admin view for site pages."""
from app.admin.base import RoleModelView


class PageView(RoleModelView):
    column_list = ("slug", "title", "is_published", "updated_at")
    column_searchable_list = ("slug", "title")
    column_filters = ("is_published", "updated_at")
    column_editable_list = ("is_published",)
    form_columns = ("slug", "title", "html_content", "seo_title", "seo_description", "is_published", "translations")
    form_args = {"translations": {"description": 'JSON per language, e.g. {"de": {"title": "…", "html_content": "…"}}.'}}
