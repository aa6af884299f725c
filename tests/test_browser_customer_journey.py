"""The whole customer journey in a real browser: sign up through a referral link, confirm the address from the
email the SMTP server received, redeem a code, buy a plan with a discount code, and run a job."""
import os

import sqlalchemy as sa

from app.extensions import db
from app.models import Coupon, Plan, User
from app.services import referrals, settings
from tests import pipeline as p
from tests.conftest import ARTIFACTS
from tests.images import image_bytes
from tests.mail_server import SmtpServer
from tests.payment_servers import StripeAPIServer
from tests.test_payments import WHSEC, send_stripe

PASSWORD = "journey-lantern-orchard-7"


def test_sign_up_verify_redeem_buy_and_run_a_job(app, live_server, browser_page, tmp_path, monkeypatch):
    page = browser_page
    with SmtpServer() as smtp, StripeAPIServer() as stripe_server:
        monkeypatch.setitem(app.config, "STRIPE_API_BASE", stripe_server.url)
        with app.app_context():
            settings.update({**smtp.settings(), "site.public_url": live_server, "customers.welcome_credits": 3,
                             "customers.require_verified_email": True,
                             "payments.stripe_secret_key": stripe_server.secret_key,
                             "payments.stripe_webhook_secret": WHSEC})
            p.local_function("upscale", operation="upscale", price_per_use=4)
            plan = Plan(name="Starter", kind="pack", price=1000, credits=40)
            db.session.add_all([plan, Coupon(code="HELLO5", kind="credits", credits=5),
                                Coupon(code="TENOFF", kind="percent", percent_off=10)])
            referrer = p.funded_customer(0, email="friend@example.com")
            code = referrals.issue_code(db.session.get(User, referrer.id))
        # Checkout is Stripe's page on the internet: the browser is answered locally and never leaves 127.0.0.1.
        page.route("https://checkout.stripe.com/**",
                   lambda route: route.fulfill(status=200, content_type="text/html", body="<h1>Stripe Checkout</h1>"))

        page.goto(f"{live_server}/?ref={code}")
        page.click("text=Sign up")
        page.fill("input[name=email]", "newcomer@example.org")
        page.fill("input[name=password]", PASSWORD)
        page.fill("input[name=confirm]", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url("**/login")
        p.drain(app)  # the worker sends the confirmation email
        link = smtp.link(smtp.to("newcomer@example.org")[0], "/verify-email/")
        page.goto(live_server + link)
        page.wait_for_selector("text=your email address is confirmed")

        page.fill("input[name=email]", "newcomer@example.org")
        page.fill("input[name=password]", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url("**/account")
        assert page.inner_text("#balance") == "13"  # 3 welcome + 10 for signing up through a referral
        page.fill("#redeem input[name=code]", "hello5")
        page.click("#redeem input[type=submit]")
        page.wait_for_selector("text=5 credits were added")
        assert page.inner_text("#balance") == "18"
        os.makedirs(ARTIFACTS, exist_ok=True)
        page.screenshot(path=os.path.join(ARTIFACTS, "customer-account-redeemed.png"), full_page=True)

        page.goto(f"{live_server}/pricing")
        page.fill("input[name=coupon]", "TENOFF")
        page.click("button[value=stripe]")
        page.wait_for_selector("text=Stripe Checkout")
        (session_id,) = stripe_server.sessions
        assert stripe_server.sessions[session_id]["amount_total"] == 900
        event = stripe_server.complete(session_id)
        assert send_stripe(app.test_client(), event).status_code == 200

        page.goto(f"{live_server}/account")
        assert page.inner_text("#balance") == "78"  # +40 bought, +20 referral on the first paid order
        photo = tmp_path / "photo.png"
        photo.write_bytes(image_bytes(size=(60, 40)))
        page.goto(f"{live_server}/f/upscale")
        page.set_input_files("input[name=image]", str(photo))
        page.click("input[type=submit][value='Process image']")
        page.wait_for_url("**/jobs/*")
        p.drain(app)
        page.wait_for_selector("#job-status:text-is('done')")
        assert page.inner_text("#balance") == "74"
        os.makedirs(ARTIFACTS, exist_ok=True)
        page.screenshot(path=os.path.join(ARTIFACTS, "customer-journey.png"), full_page=True)
    with app.app_context():
        assert db.session.get(User, referrer.id).balance == 50
        assert db.session.scalar(sa.select(Coupon.uses).where(Coupon.code == "TENOFF")) == 1
        receipts = [m["Subject"] for m in smtp.to("newcomer@example.org")]
        assert any("receipt" in s for s in receipts)
