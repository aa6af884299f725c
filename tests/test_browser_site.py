"""Every kind of site page in a real browser (Chromium via Playwright) at 1440 px and 390 px, light and dark:
axe-core finds no WCAG 2.1 A/AA violation, nothing scrolls sideways, and a screenshot of each is saved."""
import os

import pytest

from app.extensions import db
from app.models import Job, LandingExample, Page, Plan, Prompt, ShowcaseItem
from app.services import credits, storage
from tests import pipeline as p
from tests.axe import SCHEMES, violations
from tests.conftest import ARTIFACTS
from tests.helpers import browser_login
from tests.images import image_bytes

WIDTHS = (1440, 390)


def check(page, name, url):
    """axe, sideways overflow and a screenshot of the page freshly loaded in every width and colour scheme.

    Loaded anew each time and with reduced motion, so no colour transition is caught half-way."""
    problems = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for scheme in SCHEMES:
            page.emulate_media(color_scheme=scheme, reduced_motion="reduce")
            page.goto(url)
            page.wait_for_load_state("load")
            problems += [f"{name} {width}px {scheme}: {v}" for v in violations(page)]
            scroll_width, inner_width = page.evaluate(
                "() => [document.documentElement.scrollWidth, window.innerWidth]")
            if scroll_width > inner_width:
                problems.append(f"{name} {width}px: scrolls sideways ({scroll_width} > {inner_width})")
            page.screenshot(path=os.path.join(ARTIFACTS, f"site-{name}-{width}-{scheme}.png"), full_page=True)
    return problems


@pytest.fixture
def site(app):
    """A site with content on every page: a tool, plans, pages, prompts, an example, a shared result and a
    customer with jobs and credit history."""
    with app.app_context():
        fn = p.local_function("upscale", name="Upscale", description="Doubles width and height.",
                              price_per_use=2)
        p.local_function("enhance", name="Enhance", description="Auto-contrast and sharpening.")
        db.session.add(Plan(name="Starter pack", kind="pack", price=500, credits=50, description="50 credits."))
        db.session.add_all([
            Page(slug="faq", title="Frequently asked questions", is_published=True,
                 html_content="<h2>How do credits work?</h2><p>Each tool costs credits per image.</p>"),
            Page(slug="terms", title="Terms", html_content="<p>Terms.</p>", is_published=True),
        ])
        picture = storage.save(image_bytes(size=(320, 240), color=(40, 90, 160)), ".png")
        after = storage.save(image_bytes(size=(320, 240), color=(230, 180, 60)), ".png")
        db.session.add(LandingExample(title="Faded holiday photo", caption="Colours back, twice the size.",
                                      function_id=fn.id, before_ref=picture, before_content_type="image/png",
                                      after_ref=after, after_content_type="image/png"))
        for n, (title, category) in enumerate((("Crisp product shot", "product"), ("Soft portrait", "portrait"))):
            db.session.add(Prompt(title=title, prompt_text=f"{title}, clean light", category=category,
                                  tags="demo,light", function_id=fn.id, is_featured=n == 0, preview_ref=after,
                                  preview_content_type="image/png", usage_count=3))
        customer = p.funded_customer(30, email="viewer-site@example.com", password="customer-password")
        job = Job(user_id=customer.id, function_id=fn.id, function_key=fn.key, status="done", input_ref=picture,
                    input_meta={"content_type": "image/png"}, output_ref=after, output_content_type="image/png",
                    credits_charged=2)
        db.session.add(job)
        db.session.flush()
        credits.debit(customer.id, 2, reason="Job #%d upscale with a long reason to wrap" % job.id, job_id=job.id)
        db.session.add(ShowcaseItem(job_id=job.id, user_id=customer.id, function_key=fn.key,
                                    title="Golden harbour at dusk"))
        db.session.add(ShowcaseItem(job_id=_second_job(customer, fn, picture), user_id=customer.id,
                                    function_key=fn.key, title="Blurred one", is_blurred=True))
        db.session.commit()
        item_id = db.session.scalars(db.select(ShowcaseItem.id).order_by(ShowcaseItem.id)).first()
        return {"job_id": job.id, "item_id": item_id}


def _second_job(customer, fn, ref):
    job = Job(user_id=customer.id, function_id=fn.id, function_key=fn.key, status="done", input_ref=ref,
                input_meta={"content_type": "image/png"}, output_ref=ref, output_content_type="image/png")
    db.session.add(job)
    db.session.flush()
    return job.id


def test_every_site_page_is_accessible_and_fits_at_1440_and_390(app, live_server, browser_page, site):
    os.makedirs(ARTIFACTS, exist_ok=True)
    page = browser_page
    problems = []
    public = {"home": "/", "function": "/f/upscale", "pricing": "/pricing", "cms-page": "/faq",
              "prompts": "/prompts", "showcase": "/showcase", "showcase-item": f"/showcase/{site['item_id']}",
              "login": "/login"}
    for name, path in public.items():
        problems += check(page, name, f"{live_server}{path}")

    browser_login(page, live_server, "viewer-site@example.com", "customer-password", "**/account")
    for name, path in {"account": "/account", "job": f"/jobs/{site['job_id']}"}.items():
        problems += check(page, name, f"{live_server}{path}")
    assert not problems, "\n".join(problems)


def test_the_nav_collapses_into_a_menu_at_390_px(app, live_server, browser_page, site):
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(f"{live_server}/")
    assert not page.is_visible("header .nav-wide")
    header_height = page.eval_on_selector("header nav", "nav => nav.getBoundingClientRect().height")
    assert header_height < 90  # one row, not three
    page.click("header .nav-menu summary")
    page.click("header .nav-menu >> text=Prompts")
    page.wait_for_url("**/prompts")
    page.set_viewport_size({"width": 1440, "height": 900})
    assert page.is_visible("header .nav-wide") and not page.is_visible("header .nav-menu")


def test_account_tables_become_cards_at_390_px(app, live_server, browser_page, site):
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 800})
    browser_login(page, live_server, "viewer-site@example.com", "customer-password", "**/account")
    display = page.eval_on_selector("table.cards tbody tr", "tr => getComputedStyle(tr).display")
    assert display == "block"
    label = page.eval_on_selector("table.cards td[data-label=Tool]",
                                  "td => getComputedStyle(td, '::before').content")
    assert label == '"Tool"'


def test_customer_watches_a_job_finish_then_shares_it(app, live_server, browser_page, tmp_path):
    with app.app_context():
        p.local_function("upscale", operation="upscale", price_per_use=1)
        p.funded_customer(5, email="sharer@example.com", password="sharer-password")
    photo = tmp_path / "cat.png"
    photo.write_bytes(image_bytes(size=(80, 60)))
    page = browser_page
    browser_login(page, live_server, "sharer@example.com", "sharer-password", "**/f/upscale", "/f/upscale")
    page.set_input_files("input[name=image]", str(photo))
    page.click("input[type=submit][value='Process image']")
    page.wait_for_url("**/jobs/*")
    assert not page.is_visible("#share")  # nothing to share before there is a result
    p.drain(app)
    page.wait_for_selector("#share", state="visible")  # shown by share.js when the download appears
    page.fill("#share-title", "My cat, twice as big")
    page.click("#share button[type=submit]")
    page.wait_for_url("**/showcase/*")
    assert page.inner_text("h1") == "My cat, twice as big"
    size = page.eval_on_selector("img.showcase-image", "img => img.complete && [img.naturalWidth, img.naturalHeight]")
    assert size == [160, 120]
    page.click("#report summary")
    page.select_option("#reason", "spam")
    page.click("#report input[type=submit]")
    page.wait_for_selector("text=our team will review this item")
    with app.app_context():
        assert db.session.scalars(db.select(ShowcaseItem)).one().report_count == 1


def test_moderator_blurs_from_the_grid_in_a_browser(app, live_server, browser_page, site):
    with app.app_context():
        from tests.helpers import make_user

        make_user("support", email="mod@example.com", password="moderator-password")
    page = browser_page
    browser_login(page, live_server, "mod@example.com", "moderator-password")
    page.goto(f"{live_server}/admin/moderation/?status=live")
    page.check(f"#select-{site['item_id']}")
    page.click("button[name=action][value=blur]")
    page.wait_for_selector("text=Blur: 1 item(s) changed.")
    assert page.is_visible(f"#item-{site['item_id']} .badge-warning")
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, "admin-moderation-grid.png"), full_page=True)
    with app.app_context():
        assert db.session.get(ShowcaseItem, site["item_id"]).is_blurred
