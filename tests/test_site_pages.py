"""The site a customer would pay for: owner-set before/after examples, tool cards with sample images, a
favicon and social image from Settings (never a 404), footer pages, and headings that never skip a level."""
import io
import re

import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, LandingExample, Page
from app.services import settings
from tests import pipeline as p
from tests.helpers import form_values, login, make_user
from tests.images import image_bytes


def _headings(html):
    return [int(level) for level in re.findall(r"<h([1-6])[\s>]", html)]


def assert_headings_in_order(html):
    levels = _headings(html)
    assert levels and levels[0] == 1, levels
    for before, after in zip(levels, levels[1:]):
        assert after <= before + 1, f"heading skips from h{before} to h{after}: {levels}"


def test_owner_sets_a_before_after_example_that_illustrates_its_tool(app, client):
    with app.app_context():
        fn_id = p.local_function("upscale", name="Upscale").id
        login(client, make_user("admin"))
    data = form_values(client.get("/admin/landing_examples/new/").get_data(as_text=True), "caption")
    for key, value in {"title": "Old photo", "caption": "Twice the pixels", "function": str(fn_id),
                       "is_published": "y", "sort_order": "0"}.items():
        data[key] = value
    data["before_image"] = (io.BytesIO(image_bytes(size=(30, 20))), "before.png")
    missing = client.post("/admin/landing_examples/new/", data=data, content_type="multipart/form-data")
    assert "Upload an image" in missing.get_data(as_text=True)  # both images are needed to create one
    data["before_image"] = (io.BytesIO(image_bytes(size=(30, 20))), "before.png")
    data["after_image"] = (io.BytesIO(image_bytes("WEBP", size=(60, 40))), "after.webp")
    assert client.post("/admin/landing_examples/new/", data=data,
                       content_type="multipart/form-data").status_code == 302
    with app.app_context():
        example = db.session.scalars(sa.select(LandingExample)).one()
        assert example.after_content_type == "image/webp" and example.before_content_type == "image/png"
        assert db.session.scalars(sa.select(AuditLog).where(AuditLog.entity == "LandingExample")).one()
        example_id = example.id
    home = app.test_client().get("/").get_data(as_text=True)
    assert f"/media/examples/{example_id}/before" in home and "Twice the pixels" in home
    # The tool's card shows the example's "after" image.
    card = home[home.index('id="tools"'):]
    assert f'class="card-image" src="/media/examples/{example_id}/after"' in card
    after = client.get(f"/media/examples/{example_id}/after")
    assert after.mimetype == "image/webp" and after.headers["X-Content-Type-Options"] == "nosniff"
    # Editing without new files keeps the stored images.
    edit = form_values(client.get(f"/admin/landing_examples/edit/?id={example_id}").get_data(as_text=True), "caption")
    edit["caption"] = "Sharper and bigger"
    assert client.post(f"/admin/landing_examples/edit/?id={example_id}", data=edit).status_code == 302
    with app.app_context():
        example = db.session.get(LandingExample, example_id)
        assert example.caption == "Sharper and bigger" and example.after_ref and example.before_ref


def test_unpublished_example_is_not_shown(app, client):
    with app.app_context():
        db.session.add(LandingExample(title="Hidden pair", is_published=False, before_ref="fs:x.png",
                                      after_ref="fs:y.png", before_content_type="image/png",
                                      after_content_type="image/png"))
        db.session.commit()
        example_id = db.session.scalars(sa.select(LandingExample.id)).one()
    assert "Hidden pair" not in client.get("/").get_data(as_text=True)
    assert client.get(f"/media/examples/{example_id}/after").status_code == 404


def test_favicon_is_never_a_404_and_follows_settings(app, client):
    resp = client.get("/favicon.ico")
    assert resp.status_code == 200 and resp.mimetype == "image/x-icon" and resp.data[:4] == b"\x00\x00\x01\x00"
    home = client.get("/").get_data(as_text=True)
    assert '<link rel="icon" href="/static/favicon.ico"' in home
    assert re.search(r'<meta property="og:image" content="http://localhost/static/img/social-preview.png">', home)
    assert client.get("/static/img/social-preview.png").status_code == 200
    with app.app_context():
        settings.update({"site.favicon_url": "https://cdn.example.com/icon.png",
                         "site.social_image_url": "https://cdn.example.com/social.png"})
    try:
        resp = client.get("/favicon.ico")
        assert resp.status_code == 302 and resp.headers["Location"] == "https://cdn.example.com/icon.png"
        home = client.get("/").get_data(as_text=True)
        assert 'href="https://cdn.example.com/icon.png"' in home
        assert '<meta property="og:image" content="https://cdn.example.com/social.png">' in home
    finally:
        with app.app_context():
            settings.update({"site.favicon_url": "", "site.social_image_url": ""})


def test_footer_links_only_published_pages(app, client):
    with app.app_context():
        db.session.add_all([Page(slug="terms", title="Terms", is_published=True),
                            Page(slug="privacy", title="Privacy", is_published=False)])
        db.session.commit()
    footer = client.get("/pricing").get_data(as_text=True).split("site-footer", 1)[1]
    assert 'href="/terms"' in footer and 'href="/privacy"' not in footer


def test_site_pages_never_skip_a_heading_level(app, client):
    with app.app_context():
        p.local_function("upscale")
        db.session.add(Page(slug="faq", title="FAQ", html_content="<h2>Q</h2><p>A</p>", is_published=True))
        db.session.commit()
        customer = make_user("customer")
    for path in ("/", "/pricing", "/prompts", "/showcase", "/f/upscale", "/faq", "/login"):
        assert_headings_in_order(client.get(path).get_data(as_text=True))
    login(client, customer)
    assert_headings_in_order(client.get("/account").get_data(as_text=True))
