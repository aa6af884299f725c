"""A customer in a real browser: log in, upload to a function, watch the job page go live to done."""
import os

from tests import pipeline as p
from tests.helpers import browser_login
from tests.conftest import ARTIFACTS
from tests.images import image_bytes


def test_customer_uploads_and_watches_the_job_finish(app, live_server, browser_page, tmp_path):
    with app.app_context():
        p.local_function("upscale", operation="upscale", price_per_use=2, description="Doubles the size.")
        p.funded_customer(5, email="buyer@example.com", password="buyer-password")
    photo = tmp_path / "holiday.png"
    photo.write_bytes(image_bytes(size=(120, 80)))
    page = browser_page

    browser_login(page, live_server, "buyer@example.com", "buyer-password", "**/f/upscale", "/f/upscale")
    assert "you have 5" in page.inner_text("main form")

    page.set_input_files("input[name=image]", str(photo))
    page.click("input[type=submit][value='Process image']")
    page.wait_for_url("**/jobs/*")
    assert page.inner_text("#job-status") == "queued"

    p.drain(app)  # the worker runs the job while the page is open
    page.wait_for_selector("#job-status:text-is('done')")  # a selector, not a string predicate: the CSP forbids eval
    page.wait_for_selector("#download", state="visible")
    size = page.eval_on_selector("#after-img", "img => img.complete && [img.naturalWidth, img.naturalHeight]")
    assert size == [240, 160]
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, "customer-job-done.png"), full_page=True)
    assert "3 credits" in page.inner_text("header nav")


def test_bad_upload_shows_a_clear_message_in_the_form(app, live_server, browser_page, tmp_path):
    with app.app_context():
        p.local_function()
        p.funded_customer(5, email="c@example.com", password="buyer-password")
    fake = tmp_path / "not-a-photo.png"
    fake.write_bytes(b"plain text pretending to be a PNG")
    page = browser_page
    browser_login(page, live_server, "c@example.com", "buyer-password", "**/f/enhance", "/f/enhance")
    page.set_input_files("input[name=image]", str(fake))
    page.click("input[type=submit][value='Process image']")
    assert "not a readable image" in page.inner_text("[role=alert]")
    assert "you have 5" in page.inner_text("main form")
