"""CMS pages: sanitized on save against the allow-list, served at /<slug> in the visitor's language with SEO
tags, hidden until published (staff preview), unable to take an app path, and listed in the sitemap."""
import json
import re

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, Page
from app.services import cms
from tests import pipeline as p
from tests.helpers import flashes, form_values, login, make_user

ATTACK = """
<h2 style="text-align: center">Welcome</h2>
<p>Plain <strong>bold</strong>, <em>italic</em> and <a href="https://example.com/docs" target="_blank">a link</a>.</p>
<script>document.title = 'pwned-script'</script>
<img src="https://cdn.example.com/a.png" alt="A photo" onerror="alert('pwned-onerror')">
<a href="javascript:alert('pwned-link')">click me</a>
<a href="JaVaScRiPt&colon;alert('pwned-encoded')">encoded</a>
<div style="background-image: url(javascript:alert('pwned-style')); position: fixed; color: red">styled</div>
<style>body { display: none } /* pwned-style-tag */</style>
<p onmouseover="alert('pwned-handler')">hover</p>
<iframe src="https://evil.example/pwned-iframe"></iframe>
<svg onload="alert('pwned-svg')"><circle r="5"/></svg>
<table><tr><th scope="col">Plan</th></tr><tr><td>Pro</td></tr></table>
"""


def admin_client(app):
    client = app.test_client()
    with app.app_context():
        login(client, make_user("admin"))
    return client


def create_page(client, **fields):
    """The owner's action: fill the New page form in the admin and save."""
    data = form_values(client.get("/admin/pages/new/").get_data(as_text=True), "slug")
    values = {"title": "About us", "html_content": "<p>Hello</p>", "translations": "{}", "is_published": "y", **fields}
    for key, value in values.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return client.post("/admin/pages/new/", data=data)


def saved(slug):
    db.session.expire_all()
    return db.session.scalars(sa.select(Page).where(Page.slug == slug)).one()


def assert_harmless(html):
    body = html.split("<main", 1)[1].lower()
    for bad in ("<script", "onerror", "onload", "onmouseover", "javascript:", "url(", "<iframe", "<svg",
                "<style", "position", "pwned-script", "pwned-style-tag"):
        assert bad not in body, bad


def test_saved_page_keeps_allowed_markup_and_renders_no_script_handler_js_link_or_style_injection(app):
    owner = admin_client(app)
    translations = {"de": {"title": "Willkommen", "html_content": ATTACK.replace("Welcome", "Willkommen")}}
    resp = create_page(owner, slug="welcome", html_content=ATTACK, translations=json.dumps(translations))
    assert resp.status_code == 302, flashes(resp.get_data(as_text=True))

    with app.app_context():
        page = saved("welcome")
        for stored in (page.html_content, page.translations["de"]["html_content"]):
            assert "<script" not in stored and "onerror" not in stored and "javascript:" not in stored
            assert "url(" not in stored and "position" not in stored and "<iframe" not in stored
        assert db.session.scalar(sa.select(AuditLog.action).where(AuditLog.entity == "Page")) == "create"

    for url in ("/welcome", "/welcome?lang=de"):
        html = app.test_client().get(url).get_data(as_text=True)
        assert_harmless(html)
        body = html.split("<main", 1)[1]
        assert '<h2 style="text-align:center">' in body
        assert "<strong>bold</strong>" in body and "<em>italic</em>" in body
        assert '<a href="https://example.com/docs" target="_blank" rel="noopener noreferrer">a link</a>' in body
        assert '<img src="https://cdn.example.com/a.png" alt="A photo">' in body
        assert '<div style="color:red">styled</div>' in body
        assert '<th scope="col">Plan</th>' in body
        assert "click me" in body  # the text stays, the link target goes


@pytest.mark.parametrize("html,gone", [
    ('<a href="  jav&#x09;ascript:alert(1)">x</a>', "ascript"),
    ('<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>', "data:"),
    ('<img src="x" ONERROR="alert(1)">', "alert"),
    ('<p style="width: expression(alert(1))">x</p>', "expression"),
    ('<p style="color: red; behavior: url(x.htc)">x</p>', "behavior"),
    ("<object data=x></object><embed src=x><form action=/x><input name=q></form>", "<"),
    ("<math><mi xlink:href=javascript:alert(1)>x</mi></math>", "javascript"),
    ('<p id="main">x</p>', 'id="main"'),
])
def test_sanitizer_refuses_known_tricks(html, gone):
    assert gone not in cms.sanitize(html)


def seo_page(app, **fields):
    values = dict(slug="about-us", title="About us", is_published=True, html_content="<p>We make pictures better.</p>",
                  seo_title="About Neurapix — AI photo tools", seo_description="Who we are and why we build it.",
                  translations={
                      "de": {"title": "Über uns", "html_content": "<p>Wir machen Bilder besser.</p>",
                             "seo_title": "Über Neurapix"},
                      "fr": {"title": "À propos", "html_content": "<p>Nous améliorons les images.</p>",
                             "seo_title": "À propos de Neurapix", "seo_description": "Qui nous sommes."},
                  })
    values.update(fields)
    with app.app_context():
        db.session.add(Page(**values))
        db.session.commit()


def test_page_language_comes_from_the_query_then_the_browser_then_the_default(app, client):
    seo_page(app)
    lang_of = lambda resp: re.search(r'<article class="cms-page" lang="([^"]+)"', resp.get_data(as_text=True))[1]  # noqa: E731
    assert lang_of(client.get("/about-us")) == "en"
    assert lang_of(client.get("/about-us?lang=de")) == "de"
    assert lang_of(client.get("/about-us?lang=de-AT")) == "de"
    assert lang_of(client.get("/about-us", headers={"Accept-Language": "fr-CH,fr;q=0.9,en;q=0.5"})) == "fr"
    assert lang_of(client.get("/about-us?lang=de", headers={"Accept-Language": "fr"})) == "de"
    # A language the page lacks falls back: to the browser's next choice, then to the default.
    assert lang_of(client.get("/about-us?lang=es", headers={"Accept-Language": "fr"})) == "fr"
    assert lang_of(client.get("/about-us", headers={"Accept-Language": "es,it;q=0.8"})) == "en"
    assert "Accept-Language" in client.get("/about-us").headers["Vary"]


def test_translated_page_has_seo_tags_and_falls_back_field_by_field(app, client):
    seo_page(app)
    html = client.get("/about-us?lang=de").get_data(as_text=True)
    assert "<title>Über Neurapix · Neurapix</title>" in html
    assert "<h1>Über uns</h1>" in html and "Wir machen Bilder besser." in html
    # No German description: the default language's is used.
    assert '<meta name="description" content="Who we are and why we build it.">' in html
    assert '<meta property="og:title" content="Über Neurapix">' in html
    assert '<meta property="og:description" content="Who we are and why we build it.">' in html
    assert '<meta property="og:url" content="http://localhost/about-us?lang=de">' in html
    assert '<link rel="canonical" href="http://localhost/about-us?lang=de">' in html
    assert '<meta property="og:locale" content="de">' in html
    for code, href in (("en", "/about-us"), ("de", "/about-us?lang=de"), ("fr", "/about-us?lang=fr"),
                       ("x-default", "/about-us")):
        assert f'<link rel="alternate" hreflang="{code}" href="http://localhost{href}">' in html

    html = client.get("/about-us").get_data(as_text=True)
    assert "<title>About Neurapix — AI photo tools · Neurapix</title>" in html
    assert '<meta property="og:site_name" content="Neurapix">' in html


def test_page_without_seo_fields_uses_its_title_and_the_site_description(app, client):
    seo_page(app, seo_title=None, seo_description=None, translations={})
    html = client.get("/about-us").get_data(as_text=True)
    assert "<title>About us · Neurapix</title>" in html
    assert '<meta name="description" content="AI image processing' in html
    assert "og:description" not in html and 'hreflang' not in html


def test_unpublished_page_is_404_for_the_public_and_a_preview_for_staff(app):
    seo_page(app, is_published=False)
    assert app.test_client().get("/about-us").status_code == 404
    with app.app_context():
        customer, viewer = make_user("customer"), make_user("viewer")
    client = app.test_client()
    login(client, customer)
    assert client.get("/about-us").status_code == 404
    login(client, viewer)
    resp = client.get("/about-us")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "Preview: this page is not published" in html
    assert '<meta name="robots" content="noindex">' in html and resp.headers["Cache-Control"] == "private, no-store"
    assert app.test_client().get("/no-such-page").status_code == 404


@pytest.mark.parametrize("slug,message", [
    ("pricing", "belongs to the app"), ("login", "belongs to the app"), ("admin", "belongs to the app"),
    ("jobs", "belongs to the app"), ("f", "belongs to the app"), ("api", "belongs to the app"),
    ("webhooks", "belongs to the app"), ("sitemap.xml", "lower-case letters"), ("about us", "lower-case letters"),
    ("-about", "lower-case letters"),
])
def test_a_page_cannot_take_an_app_path(app, slug, message):
    resp = create_page(admin_client(app), slug=slug)
    assert resp.status_code == 200 and message in resp.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Page)) == 0


def test_slug_is_stored_lower_case_and_app_routes_win_over_rows_written_elsewhere(app, client):
    assert create_page(admin_client(app), slug="Terms-Of-Use").status_code == 302
    assert client.get("/terms-of-use").status_code == 200
    seo_page(app, slug="pricing")  # written around the admin: the app's page still answers
    assert "<h1>About us</h1>" not in client.get("/pricing").get_data(as_text=True)


@pytest.mark.parametrize("translations,message", [
    ('{"de": {"title": "x", "body": "y"}}', "unknown field"),
    ('{"Deutsch": {"title": "x"}}', "not a language code"),
    ('{"de": "Über uns"}', "must be an object"),
    ('["de"]', "must be a JSON object"),
])
def test_malformed_translations_are_refused(app, translations, message):
    resp = create_page(admin_client(app), slug="about-us", translations=translations)
    assert message in resp.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Page)) == 0


def test_sitemap_lists_published_pages_with_languages_and_enabled_functions(app, client):
    seo_page(app)
    seo_page(app, slug="draft", is_published=False, translations={})
    with app.app_context():
        p.local_function("enhance")
        p.local_function("hdr", operation="hdr", enabled=False)
    resp = client.get("/sitemap.xml")
    xml = resp.get_data(as_text=True)
    assert resp.mimetype == "application/xml" and xml.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert "<loc>http://localhost/about-us</loc>" in xml and "/draft" not in xml
    assert '<xhtml:link rel="alternate" hreflang="de" href="http://localhost/about-us?lang=de"/>' in xml
    assert "<loc>http://localhost/f/enhance</loc>" in xml and "/f/hdr" not in xml
    assert "<loc>http://localhost/</loc>" in xml


def test_page_editor_offers_wysiwyg_and_raw_html_from_vendored_assets(app):
    owner = admin_client(app)
    html = owner.get("/admin/pages/new/").get_data(as_text=True)
    assert "data-html-editor" in html and "data-kv-editor" in html  # translations are rows, not raw JSON
    for asset in ("vendor/jodit/jodit.min.js", "vendor/jodit/jodit.min.css", "js/page-editor.js"):
        assert f"/static/{asset}" in html
        assert owner.get(f"/static/{asset}").status_code == 200
    # Nothing is loaded from another host.
    assert not re.findall(r'<(?:script|link)[^>]+(?:src|href)="(?:https?:)?//', html)


def test_page_list_links_to_the_page_and_shows_its_languages(app):
    seo_page(app)
    html = admin_client(app).get("/admin/pages/").get_data(as_text=True)
    assert 'href="/about-us"' in html and "de, fr" in html
