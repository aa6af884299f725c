"""Two-factor authentication in a real browser: a staff member enrols from "My security" (QR code drawn by
the server, key in text), then logs in with the password and a code from the app."""
import os
import time

import pyotp

from tests.conftest import ARTIFACTS
from tests.helpers import browser_login, make_user


def test_staff_enrols_then_logs_in_with_a_code(app, live_server, browser_page):
    with app.app_context():
        make_user("admin", email="owner@example.com", password="owner-passphrase")
    page = browser_page
    browser_login(page, live_server, "owner@example.com", "owner-passphrase")

    page.click("text=My security")
    page.wait_for_url("**/account/security")
    box = page.locator(".qr svg").bounding_box()
    assert box and box["width"] > 100  # the QR code is drawn, not a broken image
    secret = page.inner_text("#totp-secret").strip()
    page.fill("input[name=code]", pyotp.TOTP(secret).now())
    page.click("input[type=submit][value='Turn on two-factor authentication']")
    page.wait_for_selector(".recovery-codes li")
    assert page.locator(".recovery-codes li").count() == 10
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, "two-factor-enrolled.png"), full_page=True)

    page.click("button:has-text('Log out')")
    page.wait_for_url(f"{live_server}/")
    browser_login(page, live_server, "owner@example.com", "owner-passphrase", then="**/login/2fa*")
    page.goto(f"{live_server}/admin/")
    assert "/login" in page.url  # the password alone is not a session
    browser_login(page, live_server, "owner@example.com", "owner-passphrase", then="**/login/2fa*")
    page.fill("input[name=code]", pyotp.TOTP(secret).at(time.time() + 30))
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    assert "owner@example.com" in page.inner_text("nav")
