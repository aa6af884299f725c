"""The client-app admin page and the API reference (vendored Swagger UI) in a real browser under the CSP."""
from app.extensions import db
from tests.helpers import browser_login, make_user
from tests.test_api import make_app
from tests.test_browser_csp import Watch


def test_app_page_and_api_reference_render_without_a_csp_violation(app, live_server, browser_page):
    with app.app_context():
        app_id, _raw = make_app("Browser app")
        make_user("admin", email="owner-api@example.com", password="owner-password")
        db.session.remove()
    page = browser_page
    watch = Watch(page)
    browser_login(page, live_server, "owner-api@example.com", "owner-password")
    watch.collect()
    watch.visit(f"{live_server}/admin/apps/details/?id={app_id}")
    page.get_by_role("button", name="Create API key").click()
    page.wait_for_selector("#secret")
    assert page.input_value("#secret").startswith("npx_live_")
    watch.collect()
    watch.visit(f"{live_server}/api/v1/reference")
    page.wait_for_selector(".swagger-ui .opblock-summary-path")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/v1/generate" in text for text in paths)
    watch.collect()
    assert watch.violations == []
