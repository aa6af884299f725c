"""The owner in a real browser: writes a page in the WYSIWYG editor, switches to raw HTML, publishes it, and the
public page shows the content with none of the script that was pasted in."""
import os

import sqlalchemy as sa

from app.extensions import db
from app.models import Page
from tests.conftest import ARTIFACTS
from tests.helpers import browser_login, make_user


def test_owner_writes_a_page_visually_and_in_html_and_publishes_it(app, live_server, browser_page):
    with app.app_context():
        make_user("admin", email="owner-cms@example.com", password="owner-password")
    page = browser_page
    browser_login(page, live_server, "owner-cms@example.com", "owner-password")

    page.goto(f"{live_server}/admin/pages/new/")
    page.fill("input[name=slug]", "our-story")
    page.fill("input[name=title]", "Our story")
    page.fill("input[name=seo_description]", "How a small team made photo repair effortless.")
    # Visual mode: a rich text area, with a toolbar.
    editable = page.wait_for_selector(".jodit-wysiwyg")
    editable.click()
    page.keyboard.type("We started in a garage. ")
    page.keyboard.press("Control+B")
    page.keyboard.type("Every pixel matters.")
    assert page.locator(".jodit-toolbar__box").is_visible()
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, "cms-page-editor.png"), full_page=True)

    # HTML mode: the plain textarea holds the markup the visual editor made; raw HTML can be typed there.
    page.click(".page-editor-modes button[data-mode=html]")
    source = page.locator("textarea[name=html_content]")
    assert source.is_visible()
    html = source.input_value()
    assert "We started in a garage." in html and "<strong>Every pixel matters.</strong>" in html
    source.fill(html + '<h2>Milestones</h2><ul><li>2024: first model</li></ul>'
                       '<script>window.pwned = true</script><img src="/nope.png" onerror="window.pwned = true">')
    page.screenshot(path=os.path.join(ARTIFACTS, "cms-page-editor-html.png"), full_page=True)
    # Back to visual: the typed HTML is what the editor now shows.
    page.click(".page-editor-modes button[data-mode=visual]")
    page.wait_for_selector(".jodit-wysiwyg h2:has-text('Milestones')")
    page.check("input[name=is_published]")
    page.click("input[type=submit][value=Save]")
    page.wait_for_url("**/admin/pages/")

    with app.app_context():
        saved = db.session.scalars(sa.select(Page).where(Page.slug == "our-story")).one()
        assert "<script" not in saved.html_content and "onerror" not in saved.html_content
        assert "<h2>Milestones</h2>" in saved.html_content

    page.goto(f"{live_server}/our-story")
    assert page.title() == "Our story · Neurapix"
    assert page.locator("article.cms-page strong").inner_text() == "Every pixel matters."
    assert page.locator("article.cms-page li").inner_text() == "2024: first model"
    assert page.evaluate("window.pwned") is None
    page.screenshot(path=os.path.join(ARTIFACTS, "cms-page-rendered.png"), full_page=True)
