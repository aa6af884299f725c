"""axe-core in the browser tests: the vendored axe.min.js (tests/vendor/axe-core) is served to the page from its
own origin, so the strict CSP (scripts from 'self' only) lets it run, and WCAG 2.1 A/AA violations are returned."""
import os

AXE = os.path.join(os.path.dirname(__file__), "vendor", "axe-core", "axe.min.js")
AXE_PATH = "/__tests__/axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def serve_axe(page, base_url):
    """Answer AXE_PATH on the app's origin with the vendored file (the app itself never serves it)."""
    with open(AXE, "rb") as fh:
        body = fh.read()
    page.route(f"{base_url}{AXE_PATH}", lambda route: route.fulfill(body=body, content_type="text/javascript"))


def violations(page, base_url):
    """WCAG 2.1 A/AA violations on the page as it is now: ["rule: target …", …]."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(url=f"{base_url}{AXE_PATH}")
    found = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})"
                          ".then(r => r.violations.map(v => `${v.id} (${v.impact}): ` + "
                          "v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' ' + n.failureSummary.split('\\n')[1]).join(' | ')))",
                          TAGS)
    return found
