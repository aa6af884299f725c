"""axe-core in the browser tests: the WCAG 2.1 A/AA violations of a page as it is shown.

The vendored axe.min.js (tests/vendor/axe-core, from npm) is evaluated through the DevTools protocol, which the
page's CSP does not govern: pages are checked under their real policy and the app itself never ships axe.
"""
import functools
import os

from tests.conftest import ARTIFACTS

AXE = os.path.join(os.path.dirname(__file__), "vendor", "axe-core", "axe.min.js")
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
SCHEMES = ("light", "dark")
_RUN = """([context, tags]) => axe.run(context || document, {runOnly: {type: "tag", values: tags},
                                                       resultTypes: ["violations"]})
  .then((r) => r.violations.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.slice(0, 5)
    .map((n) => n.target.join(" ")).join(" | ")}`))"""


@functools.cache
def _source():
    with open(AXE, encoding="utf-8") as fh:
        return fh.read()


def violations(page, context=None):
    """Violations on the page as it is now, within the `context` selector (the whole page by default)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(_source())
    return page.evaluate(_RUN, [context, TAGS])


def in_both_schemes(page, name, context=None, reload=True, screenshots=True):
    """Violations in light then dark mode, each named "<name> (<scheme>): …", with a screenshot of each under
    tests/artifacts/. With `reload` the page is loaded again in each mode, with reduced motion, so no colour
    transition is caught half-way; a page that answered a form post is checked as it stands instead. A full-page
    screenshot resizes the viewport for a moment, which a form being filled in may not survive: `screenshots`
    off for those."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    found = []
    try:
        for scheme in SCHEMES:
            page.emulate_media(color_scheme=scheme, reduced_motion="reduce")
            if reload:
                page.reload()
            found += [f"{name} ({scheme}): {v}" for v in violations(page, context)]
            if screenshots:
                page.screenshot(path=os.path.join(ARTIFACTS, f"{name}-{scheme}.png"), full_page=True)
    finally:
        page.emulate_media(color_scheme="light", reduced_motion="no-preference")
    return found


def assert_accessible(page, name, context=None):
    found = in_both_schemes(page, name, context)
    assert found == [], "\n".join(found)
