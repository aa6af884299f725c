"""The prompt gallery: the owner curates it in the admin (audited), visitors filter it at /prompts, and
"use this" opens the tool with the prompt, counting one use per click and none per reload."""
import io

import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, Prompt
from app.services import gallery, storage
from tests import pipeline as p
from tests.helpers import form_values, login, make_user, post
from tests.images import image_bytes


def _prompt(fn=None, **fields):
    values = dict(title="Golden hour", prompt_text="Warm golden light, soft shadows", category="portrait",
                  tags="warm,light", function_id=fn.id if fn else None)
    values.update(fields)
    prompt = Prompt(**values)
    db.session.add(prompt)
    db.session.commit()
    return prompt


def test_admin_creates_a_prompt_with_a_preview_and_it_is_audited(app, client):
    with app.app_context():
        fn_id = p.local_function("upscale").id
        login(client, make_user("admin"))
    page = client.get("/admin/prompts/new/").get_data(as_text=True)
    data = form_values(page, "prompt_text")
    for key, value in {"title": "Vintage film", "prompt_text": "Kodak Portra colours, light grain",
                       "category": "artistic", "tags": "Film, Vintage look, film", "function": str(fn_id),
                       "is_published": "y", "sort_order": "2"}.items():
        data[key] = value  # a MultiDict: update() would add a second value
    data["preview_image"] = (io.BytesIO(image_bytes("JPEG", size=(40, 30))), "preview.jpg")
    resp = client.post("/admin/prompts/new/", data=data, content_type="multipart/form-data")
    assert resp.status_code == 302
    with app.app_context():
        prompt = db.session.scalars(sa.select(Prompt)).one()
        assert prompt.tags == "film,vintage-look" and prompt.function_id == fn_id and prompt.usage_count == 0
        assert prompt.preview_content_type == "image/jpeg" and storage.read(prompt.preview_ref)[:3] == b"\xff\xd8\xff"
        row = db.session.scalars(sa.select(AuditLog).where(AuditLog.entity == "Prompt")).one()
        assert row.action == "create" and row.new_values["title"] == "Vintage film"
        prompt_id = prompt.id
    image = client.get(f"/media/prompts/{prompt_id}")
    assert image.status_code == 200 and image.mimetype == "image/jpeg"
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    assert image.headers["Content-Security-Policy"] == storage.SANDBOX_CSP


def test_admin_form_refuses_a_non_image_preview_and_bad_tags(app, client):
    with app.app_context():
        login(client, make_user("admin"))
    data = form_values(client.get("/admin/prompts/new/").get_data(as_text=True), "prompt_text")
    for key, value in {"title": "Bad", "prompt_text": "x", "category": "general", "tags": "ok"}.items():
        data[key] = value
    data["preview_image"] = (io.BytesIO(b"<svg xmlns='http://www.w3.org/2000/svg'><script>1</script></svg>"),
                             "evil.svg")
    resp = client.post("/admin/prompts/new/", data=data, content_type="multipart/form-data")
    assert resp.status_code == 200 and "not a PNG, JPEG or WebP image" in resp.get_data(as_text=True)
    data["preview_image"] = (io.BytesIO(b""), "")
    data["tags"] = "fine, not/allowed"
    resp = client.post("/admin/prompts/new/", data=data, content_type="multipart/form-data")
    assert "is not a tag" in resp.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Prompt)) == 0


def test_public_grid_filters_by_category_function_and_tag(app, client):
    with app.app_context():
        upscale, enhance = p.local_function("upscale"), p.local_function("enhance")
        _prompt(upscale, title="Crisp portrait", category="portrait", tags="sharp,face")
        _prompt(enhance, title="Misty valley", category="landscape", tags="fog,sharp")
        _prompt(enhance, title="Secret draft", category="landscape", tags="fog", is_published=False)
        _prompt(None, title="Any tool idea", category="general", tags="sharpish")

    def titles(query=""):
        html = client.get(f"/prompts{query}").get_data(as_text=True)
        return {t for t in ("Crisp portrait", "Misty valley", "Secret draft", "Any tool idea") if t in html}

    assert titles() == {"Crisp portrait", "Misty valley", "Any tool idea"}
    assert titles("?category=landscape") == {"Misty valley"}
    assert titles("?function=upscale") == {"Crisp portrait"}
    assert titles("?tag=sharp") == {"Crisp portrait", "Misty valley"}  # whole tags only: not "sharpish"
    assert titles("?tag=fog&category=landscape") == {"Misty valley"}
    empty = client.get("/prompts?category=portrait&function=enhance")
    assert empty.status_code == 200 and "No prompts match these filters" in empty.get_data(as_text=True)
    # Unknown filter values are ignored rather than failing the page.
    assert titles("?category=nope&tag=%25") == {"Crisp portrait", "Misty valley", "Any tool idea"}


def test_gallery_paginates_featured_first(app, client):
    with app.app_context():
        fn = p.local_function("upscale")
        for n in range(gallery.PAGE_SIZE + 3):
            _prompt(fn, title=f"Prompt number {n:02d}", sort_order=n)
        _prompt(fn, title="The featured one", sort_order=99, is_featured=True)
    first = client.get("/prompts").get_data(as_text=True)
    assert first.index("The featured one") < first.index("Prompt number 00")
    assert "Page 1 of 2" in first and "Prompt number 23" not in first
    second = client.get("/prompts?page=2").get_data(as_text=True)
    assert "Prompt number 26" in second and "The featured one" not in second


def test_use_this_counts_once_and_opens_the_tool_with_the_prompt(app, client):
    with app.app_context():
        fn = p.local_function("upscale")
        prompt_id = _prompt(fn).id
    resp = post(client, f"/prompts/{prompt_id}/use")
    assert resp.status_code == 303 and resp.headers["Location"] == f"/f/upscale?prompt={prompt_id}"
    # Reloading the page it lands on is a GET: it never counts again.
    assert client.get(resp.headers["Location"]).status_code == 200
    assert client.get(resp.headers["Location"]).status_code == 200
    with app.app_context():
        assert db.session.get(Prompt, prompt_id).usage_count == 1
    post(client, f"/prompts/{prompt_id}/use")
    with app.app_context():
        assert db.session.get(Prompt, prompt_id).usage_count == 2
    assert "used 2 times" in client.get("/prompts").get_data(as_text=True)


def test_use_needs_the_csrf_token_and_a_published_prompt(app, client):
    with app.app_context():
        fn = p.local_function("upscale")
        hidden = _prompt(fn, is_published=False).id
        shown = _prompt(fn).id
    assert client.post(f"/prompts/{shown}/use").status_code == 400
    resp = post(client, f"/prompts/{hidden}/use")
    assert resp.status_code == 303 and resp.headers["Location"] == "/prompts"
    with app.app_context():
        assert {p_.usage_count for p_ in db.session.scalars(sa.select(Prompt))} == {0}


def test_prefill_gives_the_prompt_text_only_for_its_own_published_prompt(app):
    with app.app_context():
        upscale, enhance = p.local_function("upscale"), p.local_function("enhance")
        mine = _prompt(upscale, prompt_text="Upscale with crisp edges")
        general = _prompt(None, prompt_text="Works anywhere")
        other = _prompt(enhance, prompt_text="Not for upscale")
        draft = _prompt(upscale, is_published=False)
        assert gallery.prefill_for(upscale, str(mine.id)) == {"prompt": "Upscale with crisp edges"}
        assert gallery.prefill_for(upscale, general.id) == {"prompt": "Works anywhere"}
        assert gallery.prefill_for(upscale, other.id) == {}
        assert gallery.prefill_for(upscale, draft.id) == {}
        assert gallery.prefill_for(upscale, "abc") == {} and gallery.prefill_for(upscale, None) == {}


def test_use_this_fills_the_tools_prompt_field_and_nothing_else(app, client):
    with app.app_context():
        fn = p.local_function("upscale")
        fn.parameters = [{"key": "prompt", "type": "prompt", "label": "Prompt", "max_length": 200}]
        db.session.commit()
        prompt_id = _prompt(fn, prompt_text="Crisp edges & fine grain").id
        plain_id = _prompt(p.local_function("enhance"), prompt_text="Only for enhance").id
    # A visitor who is not signed in keeps the prompt through the log-in link.
    assert f"next=/f/upscale?prompt%3D{prompt_id}" in client.get(f"/f/upscale?prompt={prompt_id}").get_data(as_text=True)
    with app.app_context():
        login(client, make_user("customer"))
    page = client.get(f"/f/upscale?prompt={prompt_id}").get_data(as_text=True)
    assert "Crisp edges &amp; fine grain" in page
    # A function without a prompt field, or a prompt of another function, fills nothing.
    assert "Only for enhance" not in client.get(f"/f/enhance?prompt={plain_id}").get_data(as_text=True)
    assert "Only for enhance" not in client.get(f"/f/upscale?prompt={plain_id}").get_data(as_text=True)


def test_viewer_reads_the_gallery_admin_but_cannot_change_it(app, client):
    with app.app_context():
        prompt_id = _prompt(None).id
        login(client, make_user("viewer"))
    assert client.get("/admin/prompts/").status_code == 200
    assert client.get(f"/admin/prompts/edit/?id={prompt_id}").status_code == 403


def test_seed_demo_adds_the_faq_footer_pages_and_prompts_once(app, client):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    with app.app_context():
        from app.models import Page

        assert {pg.slug for pg in db.session.scalars(sa.select(Page))} >= {"faq", "terms", "privacy", "contact"}
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Prompt)) == 3
    home = client.get("/").get_data(as_text=True)
    for slug in ("faq", "terms", "privacy", "contact"):
        assert f'href="/{slug}"' in home
    assert "Frequently asked questions" in client.get("/faq").get_data(as_text=True)
    assert "Crisp product shot" in home  # featured prompts on the landing page
