"""Security headers on every kind of answer, production-only HTTPS rules, templates without inline script,
and an admin that loads nothing from outside."""
import os
import re

import pytest

import config
from app.extensions import db
from app.models import Page
from tests.helpers import login, make_user

TEMPLATES = os.path.join(os.path.dirname(__file__), "..", "app", "templates")


def csp_directives(resp):
    policy = resp.headers["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in (p.strip() for p in policy.split(";")) if part}


def assert_protected(resp):
    csp = csp_directives(resp)
    assert csp["script-src"] == ["'self'"], csp  # no inline script, no eval, no other origin
    assert csp["default-src"] == ["'self'"] and csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"] and resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "Strict-Transport-Security" not in resp.headers  # plain http outside production


@pytest.fixture
def pages(app):
    with app.app_context():
        db.session.add(Page(slug="about-us", title="About us", html_content="<p>Hi</p>", is_published=True))
        db.session.commit()
        return {"admin": make_user("admin"), "user_id": make_user("customer").id}


@pytest.mark.parametrize("kind,role,method,path", [
    ("site page", None, "get", "/"),
    ("CMS page", None, "get", "/about-us"),
    ("sitemap", None, "get", "/sitemap.xml"),
    ("login", None, "get", "/login"),
    ("not found", None, "get", "/no/such/page"),
    ("static file", None, "get", "/static/css/site.css"),
    ("webhooks JSON", None, "post", "/webhooks/stripe"),
    ("admin list", "admin", "get", "/admin/users/"),
    ("admin edit", "admin", "get", "/admin/users/edit/?id={user_id}"),
    ("admin forbidden", "customer", "get", "/admin/settings/"),
])
def test_every_page_type_carries_the_security_headers(app, client, pages, kind, role, method, path):
    if role:
        with app.app_context():
            login(client, pages["admin"] if role == "admin" else make_user(role))
    resp = getattr(client, method)(path.format(**pages))
    assert resp.status_code in (200, 400, 403, 404), kind
    if kind == "webhooks JSON":
        assert resp.is_json
    assert_protected(resp)


def _production_app(monkeypatch):
    from cryptography.fernet import Fernet

    from app import create_app

    monkeypatch.setattr(config.ProductionConfig, "SECRET_KEY", "k" * 32)
    monkeypatch.setattr(config.ProductionConfig, "ENCRYPTION_KEY", Fernet.generate_key().decode())
    return create_app("production")


def test_production_redirects_to_https_and_sends_hsts(monkeypatch):
    client = _production_app(monkeypatch).test_client()
    plain = client.get("/static/css/site.css", base_url="http://neurapix.example")
    assert plain.status_code == 302 and plain.headers["Location"].startswith("https://neurapix.example/")
    secure = client.get("/static/css/site.css", base_url="https://neurapix.example")
    assert secure.status_code == 200
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=31536000")


INLINE_SCRIPT = [
    # JSON data blocks (application/json, JSON-LD) are never executed, so the CSP allows them.
    (re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*\btype=\"application/(?:ld\+)?json\")[^>]*>", re.I),
     "a <script> without src"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an on*= event handler"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
    (re.compile(r"\sstyle\s*=", re.I), "an inline style attribute"),
]


def test_templates_carry_no_inline_script():
    found = []
    for folder, _dirs, files in os.walk(TEMPLATES):
        for name in files:
            path = os.path.join(folder, name)
            text = open(path, encoding="utf-8").read()
            for pattern, what in INLINE_SCRIPT:
                for match in pattern.finditer(text):
                    found.append(f"{os.path.relpath(path, TEMPLATES)}: {what}: {match.group(0)!r}")
    assert not found, "\n".join(found)


def test_the_admin_loads_nothing_from_another_site(app, client, pages):
    with app.app_context():
        login(client, pages["admin"])
    html = client.get("/admin/functions/new/").get_data(as_text=True)
    assets = re.findall(r'<(?:link|script|img)[^>]+(?:href|src)="([^"]+)"', html)
    assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), assets
    # Nor do the stylesheets those pages use: no @import or url() to another origin (the theme's font).
    for asset in assets:
        if asset.endswith(".css") or ".css?" in asset:
            css = client.get(asset).get_data(as_text=True)
            assert not re.search(r"@import\s+url\(\s*['\"]?(https?:)?//", css), asset
            assert not re.search(r"url\(\s*['\"]?(https?:)?//(?!www\.w3\.org)", css), asset


def test_csp_allows_https_images_and_style_attributes_but_no_style_elements(client):
    csp = csp_directives(client.get("/login"))
    assert csp["img-src"] == ["'self'", "data:", "blob:", "https:"]  # S3 / CDN downloads redirect there
    assert csp["style-src"] == ["'self'"] and csp["style-src-attr"] == ["'unsafe-inline'"]
    assert not any("unsafe-eval" in v for values in csp.values() for v in values)
