"""A customer in a real browser: log in, upload to a function, watch the job page go live to done."""
import os

from tests import pipeline as p
from tests.contract_servers import ReplicateServer
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


def test_a_failed_job_says_so_plainly_and_the_header_shows_the_refund(app, live_server, browser_page, tmp_path):
    with ReplicateServer() as server:
        server.mode = "error500"
        with app.app_context():
            p.add_function(p.replicate_provider(server, retries=0), key="restore", price_per_use=2)
            p.funded_customer(5, email="unlucky@example.com", password="buyer-password")
        photo = tmp_path / "old-photo.png"
        photo.write_bytes(image_bytes(size=(60, 40)))
        page = browser_page
        browser_login(page, live_server, "unlucky@example.com", "buyer-password", "**/f/restore", "/f/restore")
        page.set_input_files("input[name=image]", str(photo))
        page.click("input[type=submit][value='Process image']")
        page.wait_for_url("**/jobs/*")
        job_id = page.url.rsplit("/", 1)[1]
        assert page.inner_text("#balance") == "3"

        p.drain(app)  # the provider fails while the customer watches the page
        # A selector wait, not wait_for_function: Playwright evaluates string predicates, which the CSP forbids.
        page.wait_for_selector("#job-status:text-is('failed')")
        assert page.inner_text("#job-error") == (f"We could not process this image. Reference: job #{job_id}. "
                                                 "The 2 credits it cost were refunded to your balance.")
        assert page.inner_text("#balance") == "5"  # updated by the page itself, no reload
        text = page.inner_text("body")
        assert "Replicate" not in text and server.url not in text and "500" not in text
        os.makedirs(ARTIFACTS, exist_ok=True)
        page.screenshot(path=os.path.join(ARTIFACTS, "customer-job-failed.png"), full_page=True)
        page.reload()
        assert page.inner_text("#balance") == "5" and "refunded" in page.inner_text("#job-error")
