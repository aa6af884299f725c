"""axe-core in the browser tests: the page under test is checked against WCAG 2.1 A and AA in light and dark mode.

axe is served to the page at a same-origin path by Playwright (route.fulfill from tests/vendor), so the site's CSP
(script-src 'self') allows it and the app itself never ships it.
"""
import os
from urllib.parse import urlsplit

from tests.conftest import ARTIFACTS

AXE = os.path.join(os.path.dirname(__file__), "vendor", "axe-core", "axe.min.js")
AXE_PATH = "/__tests__/axe.min.js"
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def violations(page):
    """axe's WCAG 2.1 A/AA violations on the page as it is now: [(rule id, impact, [targets])]."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(page.url))
    page.route(f"{origin}{AXE_PATH}", lambda route: route.fulfill(path=AXE, content_type="application/javascript"))
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(url=origin + AXE_PATH)
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG)
    return [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:5]) for v in result["violations"]]


def assert_accessible(page, name):
    """No axe violation in light and then dark mode; a screenshot of each under tests/artifacts/. The page is
    loaded again in each mode: switching live would catch Pico's colour transitions half-way."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    try:
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            page.reload()
            found = violations(page)
            page.screenshot(path=os.path.join(ARTIFACTS, f"{name}-{scheme}.png"), full_page=True)
            assert found == [], f"{name} ({scheme}): {found}"
    finally:
        page.emulate_media(color_scheme="light")
