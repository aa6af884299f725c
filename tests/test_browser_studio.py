"""The studio in a real browser: the owner's live preview follows the parameters JSON, the customer sets
parameters with a live price, watches the job, compares before and after, runs it again, and browses results.
Every page is checked with axe-core (WCAG 2.1 A/AA) in light and dark mode."""
import json

import sqlalchemy as sa

from app.extensions import db
from app.models import AIFunction, Job
from tests import pipeline as p
from tests.axe import assert_accessible
from tests.helpers import browser_login, make_user
from tests.images import image_bytes

DEFINITION = [
    {"key": "prompt", "type": "prompt", "label": "What to change", "help": "Describe the result.", "max_length": 80},
    {"key": "scale", "type": "slider", "label": "Scale", "min": 1, "max": 4, "step": 1, "default": 2,
     "price_multiplier": {"4": 2}},
    {"key": "model", "type": "select", "label": "Model", "default": "fast",
     "options": [{"value": "fast", "label": "Fast"}, {"value": "best", "label": "Best quality"}]},
    {"key": "aspect", "type": "grid_select", "label": "Aspect ratio", "options": ["16:9", "1:1"], "default": "1:1"},
    {"key": "face", "type": "toggle", "label": "Restore faces", "help": "Sharper faces."},
    {"key": "seed", "type": "seed", "label": "Seed"},
]


def _type_into(page, editor, text):
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


def test_the_live_preview_follows_the_json_as_the_owner_types(app, live_server, browser_page):
    with app.app_context():
        fn = p.local_function("restore", price_per_use=3)
        make_user("admin", email="owner@example.com", password="owner-password")
        fn_id = fn.id
    page = browser_page
    browser_login(page, live_server, "owner@example.com", "owner-password")
    page.goto(f"{live_server}/admin/functions/edit/?id={fn_id}")
    page.wait_for_selector("#parameters-preview-form >> text=No parameters")
    editor = page.locator(".parameters-with-preview .CodeMirror")

    _type_into(page, editor, json.dumps([{"key": "scale", "type": "slider", "label": "Scale", "min": 1, "max": 4,
                                          "default": 2, "price_multiplier": {"4": 2}}]))
    page.wait_for_selector("#parameters-preview-form input[type=range]#param-scale")
    assert page.inner_text("#parameters-preview-form [data-price-value]") == "3"
    page.fill("#parameters-preview-form #param-scale", "4")  # the preview is live: its price follows
    page.wait_for_selector("#parameters-preview-form [data-price-value]:text-is('6')")

    _type_into(page, editor, json.dumps([{"key": "scale", "type": "slider", "label": "Scale", "min": 5, "max": 2},
                                         {"key": "scale", "type": "colour", "label": "Again"}]))
    page.wait_for_selector("#parameters-preview-errors li:has-text('#1 scale.min: min (5) is more than max (2)')")
    errors = page.inner_text("#parameters-preview-errors")
    assert "#2 scale.key: the key 'scale' is used twice." in errors and "unknown type 'colour'" in errors

    _type_into(page, editor, json.dumps([{"key": "style", "type": "grid_select", "label": "Style",
                                          "options": ["Film", "Vivid"]}]))
    page.wait_for_selector("#parameters-preview-form input[type=radio][value=Vivid]")
    assert page.inner_text("#parameters-preview-errors") == ""
    assert page.locator("#parameters-preview-form #param-scale").count() == 0
    page.screenshot(path="tests/artifacts/admin-parameters-preview.png", full_page=True)

    page.click("input[type=submit][value=Save]")
    page.wait_for_url("**/admin/functions/")
    with app.app_context():
        saved = db.session.get(AIFunction, fn_id)
        assert saved.parameters == [{"key": "style", "type": "grid_select", "label": "Style",
                                     "options": ["Film", "Vivid"]}]


def test_a_customer_sets_parameters_watches_compares_reruns_and_browses(app, live_server, browser_page, tmp_path):
    with app.app_context():
        p.local_function("upscale", operation="upscale", price_per_use=2, parameters=DEFINITION,
                         description="Makes your image larger.")
        p.funded_customer(20, email="artist@example.com", password="artist-password")
    photo = tmp_path / "cat.png"
    photo.write_bytes(image_bytes(size=(90, 60)))
    page = browser_page
    browser_login(page, live_server, "artist@example.com", "artist-password", "**/f/upscale", "/f/upscale")
    assert_accessible(page, "studio-function")

    price = page.locator("#price-line [data-price-value]")
    assert price.inner_text() == "2"
    page.fill("#param-scale", "4")
    page.wait_for_selector("#price-line [data-price-value]:text-is('4')")
    assert page.inner_text("output[for=param-scale]") == "4"
    page.fill("#param-prompt", "crisp whiskers")
    page.select_option("#param-model", "best")
    page.check("input[name=param-aspect][value='16:9']")
    page.check("#param-face")
    page.fill("#param-seed", "42")
    page.set_input_files("input[name=image]", str(photo))
    page.click("input[type=submit][value='Process image']")
    page.wait_for_url("**/jobs/*")
    assert page.inner_text("#job-status") == "queued"
    assert "number 1 in the queue" in page.inner_text("#job-announce")
    assert page.get_attribute("#job-announce", "aria-live") == "polite"
    assert_accessible(page, "studio-job-queued")

    p.drain(app)
    page.wait_for_selector("#job-status:text-is('done')")
    page.wait_for_selector("#compare-slider", state="visible")
    assert page.inner_text("#job-position") == ""
    assert page.eval_on_selector("#after-img", "img => img.complete && [img.naturalWidth, img.naturalHeight]") \
        == [360, 240]
    page.fill("#compare-slider", "30")
    assert page.eval_on_selector("#after", "el => el.style.clipPath") == "inset(0px 70% 0px 0px)"
    assert page.get_attribute("#compare-slider", "aria-valuetext") == "30% result shown"
    assert "crisp whiskers" in page.inner_text(".job-settings")
    assert page.inner_text("#balance") == "16"  # 2 credits × 2 for a 4× scale
    assert_accessible(page, "studio-job-done")

    page.click("#run-again")
    page.wait_for_url("**/f/upscale?from=*")
    assert page.input_value("#param-prompt") == "crisp whiskers"
    assert page.input_value("#param-scale") == "4" and page.input_value("#param-seed") == "42"
    assert page.input_value("#param-model") == "best" and page.is_checked("#param-face")
    assert page.is_checked("input[name=param-aspect][value='16:9']")
    assert price.inner_text() == "4"

    page.goto(f"{live_server}/account/jobs")
    page.wait_for_selector(".gallery-item img")
    # decode() settles once the thumbnail has loaded (a promise, not a polled string predicate).
    assert page.eval_on_selector(".gallery-item img", "img => img.decode().then(() => img.naturalWidth)") == 320
    assert_accessible(page, "studio-results")
    page.select_option("#filter-status", "failed")
    page.click("#gallery-filters button[type=submit]")
    page.wait_for_selector("text=No results match these filters")
    with app.app_context():
        job_id = db.session.scalar(sa.select(Job.id))
    page.goto(f"{live_server}/account/jobs/{job_id}/delete")
    assert_accessible(page, "studio-delete")
    page.click("#delete-form input[type=submit]")
    page.wait_for_url("**/account/jobs")
    assert "were deleted" in page.inner_text("main")
    assert page.locator(".gallery-item").count() == 0
