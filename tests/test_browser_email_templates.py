"""The owner edits an email template in a real browser: the list and the editor pass axe-core (WCAG 2.1 A/AA) in
light and dark colour schemes, the preview's HTML stays in a sandboxed frame, and the CSP sees no violation."""
import os

import sqlalchemy as sa

from app.extensions import db
from app.models import EmailTemplate
from tests.axe import in_both_schemes
from tests.conftest import ARTIFACTS
from tests.helpers import browser_login, make_user
from tests.test_browser_csp import Watch

def test_owner_edits_previews_and_saves_an_email_template(app, live_server, browser_page):
    with app.app_context():
        make_user("admin", email="owner-tpl@example.com", password="owner-password")
    page = browser_page
    watch = Watch(page)
    browser_login(page, live_server, "owner-tpl@example.com", "owner-password")
    violations = []

    watch.visit(f"{live_server}/admin/email_templates/")
    violations += in_both_schemes(page, "email-templates-list", reload=False)
    page.fill("#language-job_failed", "de")
    page.click("form:has(#language-job_failed) button[type=submit]")
    page.wait_for_url("**/admin/email_templates/job_failed/de")
    assert "Job #{{ job.id }} failed" in page.input_value("#tpl-subject")
    page.wait_for_selector("iframe.email-preview-html")
    violations += in_both_schemes(page, "email-template-editor", reload=False)

    # A template with a trick is refused with the reason next to the field, and the browser keeps what was typed.
    page.fill("#tpl-subject", "Auftrag {{ job.__class__ }}")
    page.click("button[value=save]")
    page.wait_for_selector("#tpl-subject-error")
    assert "__class__" in page.inner_text("#tpl-subject-error")
    violations += in_both_schemes(page, "email-template-error", reload=False)

    # Preview: the owner's HTML (script included) is shown in a sandboxed frame and runs nothing.
    page.fill("#tpl-subject", "Auftrag {{ job.id }} fehlgeschlagen")
    page.fill("#tpl-html", "<p class='hello'>{{ notice }}</p><script>window.parent.pwned = true</script>")
    page.click("button[value=preview]")
    frame = page.frame_locator("iframe.email-preview-html")
    assert "Job #318 failed" in frame.locator("p.hello").inner_text()
    assert page.evaluate("window.pwned === undefined")
    violations += in_both_schemes(page, "email-template-preview", reload=False)
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, "email-template-editor.png"), full_page=True)
    page.locator("iframe.email-preview-html").screenshot(path=os.path.join(ARTIFACTS, "email-template-preview.png"))

    page.click("button[value=save]")
    page.wait_for_selector(".alert-success")
    watch.collect()
    with app.app_context():
        row = db.session.scalars(sa.select(EmailTemplate)).one()
        assert (row.name, row.language, row.subject) == ("job_failed", "de", "Auftrag {{ job.id }} fehlgeschlagen")

    # Reset asks first; answered "Cancel", nothing is deleted.
    page.click("button[data-confirm]")
    assert watch.dialogs and "shipped default" in watch.dialogs[-1]
    watch.collect()
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(EmailTemplate)) == 1

    assert violations == [], "\n".join(violations)
    assert watch.violations == []
