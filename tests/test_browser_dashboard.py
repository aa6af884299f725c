"""The dashboard in a real browser under the strict CSP: charts drawn from the rollups (canvas not blank), no
console error or CSP violation, axe-core (vendored from npm) finds no WCAG 2.1 A/AA violation in the
dashboard, light and dark; screenshots at 1440 px and 390 px."""
import os
from datetime import datetime, timedelta, timezone

from app.extensions import db
from app.models import Job, PageViewDaily, Payment
from app.services import analytics
from tests.axe import violations
from tests.conftest import ARTIFACTS
from tests.helpers import browser_login, make_user
from tests.test_browser_csp import WATCH_CSP

CANVAS_INKED = """c => {
  const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) return true;
  return false;
}"""


def _seed():
    now = datetime.now(timezone.utc)
    customer = make_user()
    for day in range(10):
        created = now - timedelta(days=day, hours=1)
        for status, seconds in (("done", 2), ("done", 9), ("failed", 30)):
            db.session.add(Job(user_id=customer.id, function_key="enhance" if seconds < 9 else "upscale",
                               provider_key="replicate", status=status, credits_charged=2, created_at=created,
                               started_at=created, finished_at=created + timedelta(seconds=seconds),
                               error="Provider answered 500" if status == "failed" else None,
                               refunded=status == "failed"))
        db.session.add(Payment(user_id=customer.id, provider="stripe", status="succeeded", amount=1500 + day * 100,
                               currency="USD", credits=100, plan_name="Starter", created_at=created))
        db.session.add(PageViewDaily(day=created.date(), path="/", views=40 + day))
    db.session.commit()
    analytics.refresh_changed()


def test_dashboard_charts_render_under_the_csp_and_pass_axe(app, live_server, browser_page):
    with app.app_context():
        _seed()
        make_user("admin", email="owner-dash@example.com", password="owner-password")
    page = browser_page
    errors = []
    page.add_init_script(WATCH_CSP)
    # The browser's own favicon request is no part of the page (the admin has no favicon).
    page.on("console", lambda m: errors.append(f"{m.text} {m.location.get('url')}")
            if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    browser_login(page, live_server, "owner-dash@example.com", "owner-password")

    os.makedirs(ARTIFACTS, exist_ok=True)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.set_viewport_size({"width": 1440, "height": 900})
        page.goto(f"{live_server}/admin/?range=30d")
        page.wait_for_selector("canvas[data-chart=revenue_usd][data-drawn=true]")
        for key in ("revenue_usd", "credits", "functions", "failures", "page_views", "latency"):
            canvas = page.locator(f"canvas[data-chart={key}]")
            assert canvas.get_attribute("data-drawn") == "true", key
            assert canvas.evaluate(CANVAS_INKED), f"{key} chart is blank"
        page.screenshot(path=os.path.join(ARTIFACTS, f"dashboard-1440-{scheme}.png"), full_page=True)
        assert violations(page) == []
        page.set_viewport_size({"width": 390, "height": 844})
        page.wait_for_selector("canvas[data-chart=failures][data-drawn=true]")
        page.screenshot(path=os.path.join(ARTIFACTS, f"dashboard-390-{scheme}.png"), full_page=True)
        assert violations(page) == []
        assert page.evaluate("window.__csp") == []

    # The range form: picking dates switches to a custom range and the page follows.
    page.fill("#start", (datetime.now(timezone.utc).date() - timedelta(days=2)).isoformat())
    assert page.eval_on_selector("#range", "s => s.value") == "custom"
    page.click("button:has-text('Show')")
    page.wait_for_url("**range=custom**")
    page.wait_for_selector("canvas[data-chart=failures][data-drawn=true]")
    assert page.locator("#table-failures tbody tr").count() == 3
    assert errors == []
    assert page.evaluate("window.__csp") == []
