"""The strict CSP in a real browser: the owner works through every kind of page, the JSON editor, the page
editor, inline fallback rows, filters and confirmations, and the browser reports no CSP violation."""
import os

from app.extensions import db
from app.models import AIFunction, Page
from tests import pipeline as p
from tests.conftest import ARTIFACTS
from tests.helpers import browser_login, make_user

# Every violation the page sees, reported by the browser itself (securitypolicyviolation events).
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber} on ${(e.target.outerHTML || "document").slice(0, 120)}`);
});
"""


class Watch:
    def __init__(self, page):
        self.page = page
        self.violations, self.dialogs = [], []
        page.add_init_script(WATCH_CSP)
        page.on("console", self._console)
        page.on("dialog", self._dialog)

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()  # every confirm() answered "Cancel"

    def _console(self, message):
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.violations.append(f"console: {message.text}")

    def visit(self, url):
        self.page.goto(url)
        self.collect()

    def collect(self):
        self.violations += [f"{self.page.url}: {v}" for v in self.page.evaluate("window.__csp || []")]
        self.page.evaluate("window.__csp = []")


def test_admin_and_site_work_under_the_csp_without_a_single_violation(app, live_server, browser_page):
    with app.app_context():
        fn = p.local_function("restore", operation="enhance")
        fn_id, provider_id = fn.id, fn.provider_id
        db.session.add(Page(slug="csp-story", title="CSP story", html_content="<p>Hello</p>", is_published=True))
        db.session.commit()
        make_user("admin", email="owner-csp@example.com", password="owner-password")
        make_user("customer", email="someone-csp@example.com")
    page = browser_page
    watch = Watch(page)

    browser_login(page, live_server, "owner-csp@example.com", "owner-password")
    watch.collect()

    # Function form: the JSON editor (CodeMirror) takes typing; a fallback row is added inline.
    watch.visit(f"{live_server}/admin/functions/edit/?id={fn_id}")
    page.wait_for_selector(".CodeMirror")
    page.click(".CodeMirror")
    page.keyboard.press("Control+A")
    page.keyboard.insert_text('{"params": {"strength": 2}}')
    assert "Valid JSON" in page.locator(".json-editor-status").first.inner_text()
    page.click("#fallbacks-button")
    page.wait_for_selector("#fallbacks-0-position")
    assert page.url.endswith(f"?id={fn_id}")  # the "Add" link did not navigate
    watch.collect()

    # Provider form: the JSON editor again, with the plugin's schema documented.
    watch.visit(f"{live_server}/admin/providers/edit/?id={provider_id}")
    page.wait_for_selector(".CodeMirror")
    watch.collect()

    # Page editor: Jodit's visual mode types, the HTML switch shows the markup.
    watch.visit(f"{live_server}/admin/pages/new/")
    page.wait_for_selector(".jodit-wysiwyg").click()
    page.keyboard.type("Under a strict policy.")
    page.click(".page-editor-modes button[data-mode=html]")
    assert "Under a strict policy." in page.locator("textarea[name=html_content]").input_value()
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, "csp-page-editor.png"), full_page=True)
    watch.collect()

    # Lists: a filter is added from the dropdown; the delete confirmation is asked and cancelled.
    watch.visit(f"{live_server}/admin/users/")
    page.click("text=Add Filter")
    page.click(".field-filters a.filter >> nth=0")
    page.wait_for_selector(".filter-op")
    page.click("form.icon button[data-confirm] >> nth=0")
    assert "/admin/users/" in page.url
    # The bulk "With selected → Delete" menu asks too (and is cancelled).
    page.check("input.action-checkbox >> nth=0")
    page.click("text=With selected")
    page.click("[data-model-action=delete]")
    assert "/admin/users/" in page.url
    assert len(watch.dialogs) == 2, watch.dialogs  # both confirmations were really asked
    watch.collect()

    # An editable list cell (x-editable) opens its inline editor.
    watch.visit(f"{live_server}/admin/functions/")
    page.click("a[data-role=x-editable][name=price_per_use] >> nth=0")
    page.fill(".editable-input input", "7")
    page.keyboard.press("Enter")
    page.wait_for_selector("a[data-role=x-editable][name=price_per_use]:has-text('7')")
    with app.app_context():
        assert db.session.get(AIFunction, fn_id).price_per_use == 7
    # The yes/no cell's choices come from JSON in a data attribute, read without eval.
    page.click("a[data-role=x-editable-boolean][name=enabled] >> nth=0")
    page.wait_for_selector(".editable-input .select2-container, .editable-input select")
    watch.collect()

    for path in ("/admin/", "/admin/settings/", "/admin/audit/", "/admin/moderation/", "/admin/prompts/new/", "/",
                 "/f/restore", "/csp-story", "/pricing", "/prompts", "/showcase", "/no-such-page"):
        watch.visit(f"{live_server}{path}")

    assert not watch.violations, "\n".join(watch.violations)
