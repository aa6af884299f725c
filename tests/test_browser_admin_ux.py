"""The admin as an owner uses it in a real browser: retry and cancel from a job's row, credits from a user's row,
plan limits edited as rows (added, removed, saved), lists that scroll sideways on a 390 px phone; no CSP
violation, and axe-core finds no WCAG 2.1 A/AA violation on these pages in light and dark colour schemes."""
import os
from datetime import datetime, timezone

import sqlalchemy as sa

from app.extensions import db
from app.models import Job, JobLog, Page, Plan, User
from app.services import storage
from tests.axe import in_both_schemes
from tests.conftest import ARTIFACTS
from tests.helpers import browser_login, make_user
from tests.images import image_bytes
from tests.test_browser_csp import Watch


class AcceptingWatch(Watch):
    """CSP watch that answers every confirmation "OK" (the owner means it), remembering each question."""

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.accept()


def _job(user_id, status, **fields):
    job = Job(user_id=user_id, function_key="enhance", provider_key="local", status=status, credits_charged=2,
              created_at=datetime(2026, 7, 1, 9, 0, tzinfo=timezone.utc), **fields)
    db.session.add(job)
    db.session.commit()
    return job.id


def test_owner_uses_row_actions_and_the_limits_editor_on_desktop_and_phone(app, live_server, browser_page):
    with app.app_context():
        make_user("admin", email="owner-ux@example.com", password="owner-password")
        customer = make_user("customer", email="buyer-ux@example.com", balance=4)
        png = image_bytes("PNG")
        failed = _job(customer.id, "failed", error="provider said no")
        queued = _job(customer.id, "queued")
        done = _job(customer.id, "done", input_ref=storage.save(png, ".png"), output_ref=storage.save(png, ".png"),
                    output_content_type="image/png", input_meta={"content_type": "image/png"})
        plan = Plan(name="Studio", price=1999, credits=100, limits={"jobs_per_day": 100, "queue_priority": 5})
        db.session.add(plan)
        db.session.add(Page(slug="about-ux", title="About", html_content="<p>Hi</p>",
                            translations={"de": {"title": "Über uns"}}))
        db.session.commit()
        customer_id, plan_id = customer.id, plan.id
        page_id = db.session.query(Page.id).filter_by(slug="about-ux").scalar()
    page = browser_page
    watch = AcceptingWatch(page)
    browser_login(page, live_server, "owner-ux@example.com", "owner-password")
    os.makedirs(ARTIFACTS, exist_ok=True)
    problems = []

    def accessible(name):
        problems.extend(in_both_schemes(page, f"admin-ux-{name.replace(' ', '-')}", reload=False, screenshots=False))

    # Jobs: retry the failed job and cancel the queued one from their rows.
    watch.visit(f"{live_server}/admin/jobs/")
    accessible("jobs list")
    page.click(f"form.icon:has(input[name=rowid][value='{failed}']) button[title^='Retry']")
    page.wait_for_selector("text=1 job(s) queued again")
    page.wait_for_load_state("load")  # the flash shows before admin.js, which asks for the confirmation, has run
    page.click(f"form.icon:has(input[name=rowid][value='{queued}']) button[title='Cancel']")
    page.wait_for_selector("text=Cancelled and refunded")
    assert any(q.startswith("Cancel this job?") for q in watch.dialogs), watch.dialogs
    with app.app_context():
        assert db.session.get(Job, queued).status == "cancelled"
        # Queued again (and failed again at once: its function is gone), by the owner.
        assert db.session.scalar(sa.select(JobLog.message).where(JobLog.job_id == failed)).startswith("Retried by")
    watch.collect()

    # The job page: both images are drawn, and the log is there.
    watch.visit(f"{live_server}/admin/jobs/details/?id={done}")
    for which in ("Input", "Output"):
        image = page.locator(f"img[alt^='{which} image']")
        assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    accessible("job page")

    # Users: add credits from the customer's row (on top of the refunds of the jobs above).
    with app.app_context():
        before = db.session.get(User, customer_id).balance
    watch.visit(f"{live_server}/admin/users/")
    accessible("users list")
    page.click(f"a[href='/admin/users/credits?id={customer_id}']")
    page.fill("#amount", "25")
    page.fill("#reason", "Goodwill after an outage")
    accessible("credits form")
    page.click("button[type=submit]:has-text('Apply')")
    page.wait_for_selector(f"text=the balance is now {before + 25}")
    accessible("user page")
    with app.app_context():
        assert db.session.get(User, customer_id).balance == before + 25
    watch.collect()

    # Plan limits: remove one row, add one, save; the stored JSON follows.
    watch.visit(f"{live_server}/admin/plans/edit/?id={plan_id}")
    editor = page.locator("[data-kv-editor]")
    editor.locator("tr:has(option[value=queue_priority][selected]) [data-kv-remove]").click()
    editor.locator("[data-kv-add]").click()
    new_row = editor.locator("tbody tr").last
    new_row.locator("select").select_option("max_file_size")
    new_row.locator("input").fill("20971520")
    accessible("plan form")
    page.click("input[type=submit][value=Save]")
    page.wait_for_url("**/admin/plans/")
    with app.app_context():
        assert db.session.get(Plan, plan_id).limits == {"jobs_per_day": 100, "max_file_size": 20971520}
    watch.collect()

    # Page translations: a second language added as a row.
    watch.visit(f"{live_server}/admin/pages/edit/?id={page_id}")
    editor = page.locator("[data-kv-editor]")
    editor.locator("[data-kv-add]").click()
    row = editor.locator("tbody tr").last
    row.locator("input").fill("fr")
    row.locator("select").select_option("title")
    row.locator("textarea").fill("À propos")
    accessible("page form")
    page.click("input[type=submit][value=Save]")
    page.wait_for_url("**/admin/pages/")
    with app.app_context():
        assert db.session.get(Page, page_id).translations == {"de": {"title": "Über uns"}, "fr": {"title": "À propos"}}
    watch.collect()

    # A phone: the list scrolls sideways inside its box; the page itself does not.
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/admin/jobs/", "/admin/users/"):
        watch.visit(f"{live_server}{path}")
        box = page.locator(".table-responsive").first
        assert box.evaluate("el => el.scrollWidth > el.clientWidth && getComputedStyle(el).overflowX === 'auto'")
        box.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
        assert box.evaluate("el => el.scrollLeft > 0")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        page.screenshot(path=os.path.join(ARTIFACTS, f"admin-390{path.replace('/', '-').rstrip('-')}.png"),
                        full_page=True)
    accessible("users list at 390 px")

    assert not watch.violations, "\n".join(watch.violations)
    assert not problems, "\n".join(problems)
