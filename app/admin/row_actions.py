"""Actions on one list row (retry, cancel, add credits, ban): the same named actions as the bulk menu, shown
only where the signed-in user may run them on that row.

A POST row action submits the view's own action form (action_view: CSRF, role check, the action's service and
its per-row permission check), so a row button and "With selected" take one path.
"""
from flask_admin.model.template import BaseListRowAction


class RowAction(BaseListRowAction):
    """`name` is the view's @action; `shown(view, row)` says whether this row offers it to the signed-in user.
    With `endpoint`, the row links to that view page (a form asking for more, e.g. an amount and a reason)."""

    def __init__(self, name, icon_class, title, shown=None, confirm=None, endpoint=None):
        super().__init__(title=title)
        self.name, self.icon_class, self.confirm, self.endpoint = name, icon_class, confirm, endpoint
        self._shown = shown

    def render(self, context, row_id, row):
        view = context.resolve("admin_view")
        if not view.is_action_allowed(self.name) or (self._shown and not self._shown(view, row)):
            return ""
        if self.endpoint:
            url = context.resolve("get_url")(self.endpoint, id=row_id)
            return self._resolve_symbol(context, "row_actions.link")(self, url)
        return self._resolve_symbol(context, "row_actions.post_row")(self, row_id, row)
