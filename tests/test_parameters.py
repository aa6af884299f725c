"""Function parameters: the owner's definition is checked field by field, the site renders every type, the
server checks every submitted value (a tampered one costs nothing), price rules change the debit, and the values
reach the provider as `params` (renamed by its config) and are kept on the job, through export, import and clone."""
import base64
import io
import json
import re

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AIFunction, AuditLog, Job
from app.services import catalog, parameters
from tests import pipeline as p
from tests.contract_servers import ReplicateServer
from tests.helpers import csrf_token, login, make_user, post
from tests.images import image_bytes

EVERY_TYPE = [
    {"key": "prompt", "type": "prompt", "label": "Prompt", "help": "What to change", "max_length": 50,
     "required": True},
    {"key": "style", "type": "text", "label": "Style name", "max_length": 12, "default": "natural"},
    {"key": "strength", "type": "number", "label": "Strength", "min": 0, "max": 1, "step": 0.1, "default": 0.5},
    {"key": "scale", "type": "slider", "label": "Scale", "min": 1, "max": 4, "step": 1, "default": 2,
     "price_multiplier": {"4": 2}},
    {"key": "model", "type": "select", "label": "Model", "default": "fast",
     "options": [{"value": "fast", "label": "Fast"}, {"value": "best", "label": "Best quality"}],
     "price_multiplier": {"best": 1.5}},
    {"key": "aspect", "type": "grid_select", "label": "Aspect ratio", "options": ["16:9", "1:1", "9:16"],
     "default": "1:1"},
    {"key": "face", "type": "toggle", "label": "Restore faces", "default": False},
    {"key": "seed", "type": "seed", "label": "Seed"},
    {"key": "mask", "type": "image", "label": "Mask"},
]


def errors_of(definition):
    return dict(parameters.definition_errors(definition))


# --- the definition ---


def test_a_valid_definition_of_every_type_has_no_errors():
    assert parameters.definition_errors(EVERY_TYPE) == []
    assert parameters.definition_errors([]) == []


@pytest.mark.parametrize("definition, where, words", [
    ([{"key": "x", "type": "colour", "label": "X"}], "#1 x.type", "unknown type 'colour'"),
    ([{"key": "x", "type": "number", "label": "X", "min": 5, "max": 1}], "#1 x.min", "min (5) is more than max (1)"),
    ([{"key": "x", "type": "text", "label": "X"}, {"key": "x", "type": "toggle", "label": "Y"}], "#2 x.key",
     "used twice"),
    ([{"key": "x", "type": "slider", "label": "X", "min": 0, "max": 10, "default": 20}], "#1 x.default",
     "bad default: choose a value from 0 to 10"),
    ([{"key": "x", "type": "select", "label": "X", "options": ["a", "b"], "default": "c"}], "#1 x.default",
     "choose one of the options"),
    ([{"key": "x", "type": "text", "label": "X", "max_length": 3, "default": "toolong"}], "#1 x.default",
     "at most 3 characters"),
    ([{"key": "x", "type": "toggle", "label": "X", "default": "yes please"}], "#1 x.default", "on or off"),
    ([{"key": "Bad Key", "type": "text", "label": "X"}], "#1 Bad Key.key", "lower case letters"),
    ([{"key": "x", "type": "text"}], "#1 x.label", "label is required"),
    ([{"key": "x", "type": "slider", "label": "X", "min": 1}], "#1 x.min", "needs both min and max"),
    ([{"key": "x", "type": "number", "label": "X", "step": 0}], "#1 x.step", "more than 0"),
    ([{"key": "x", "type": "select", "label": "X", "options": []}], "#1 x.options", "non-empty list"),
    ([{"key": "x", "type": "select", "label": "X", "options": ["a", "a"]}], "#1 x.options", "listed twice"),
    ([{"key": "x", "type": "text", "label": "X", "min": 1}], "#1 x.min", "not a field of a text parameter"),
    ([{"key": "x", "type": "image", "label": "X", "default": "a.png"}], "#1 x.default", "cannot have a default"),
    ([{"key": "x", "type": "select", "label": "X", "options": ["a"], "price_multiplier": {"b": 2}}],
     "#1 x.price_multiplier", "not one of the options"),
    ([{"key": "x", "type": "toggle", "label": "X", "price_multiplier": {"true": -1}}], "#1 x.price_multiplier",
     "more than 0"),
    ({"key": "x"}, "parameters", "JSON list"),
])
def test_bad_definitions_are_named_field_by_field(definition, where, words):
    found = errors_of(definition)
    assert where in found, found
    assert words in found[where]


def test_the_admin_form_refuses_a_bad_definition_and_saves_a_good_one(app, client):
    with app.app_context():
        fn = p.local_function("restore")
        admin = make_user("admin")
        fn_id = fn.id
    login(client, admin)
    page = client.get(f"/admin/functions/edit/?id={fn_id}").get_data(as_text=True)
    assert 'data-parameters-preview="/admin/functions/parameters-preview"' in page
    from tests.helpers import form_values
    values = form_values(page, "name")
    values["parameters"] = json.dumps([{"key": "scale", "type": "slider", "label": "Scale", "min": 4, "max": 2}])
    resp = post(client, f"/admin/functions/edit/?id={fn_id}", values)
    assert "#1 scale.min: min (4) is more than max (2)" in resp.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(AIFunction, fn_id).parameters == []
    values["parameters"] = json.dumps(EVERY_TYPE)
    post(client, f"/admin/functions/edit/?id={fn_id}", values)
    with app.app_context():
        assert db.session.get(AIFunction, fn_id).parameters == EVERY_TYPE


def test_the_preview_endpoint_renders_the_site_fields_and_lists_errors(app, client):
    with app.app_context():
        admin, support = make_user("admin"), make_user("support")
    login(client, admin)
    answer = post(client, "/admin/functions/parameters-preview",
                  {"parameters": json.dumps(EVERY_TYPE), "price_per_use": "3"}).get_json()
    assert answer["ok"] and answer["errors"] == []
    for key in ("prompt", "style", "strength", "scale", "model", "aspect", "face", "seed", "mask"):
        assert f'name="param-{key}"' in answer["html"]
    assert 'data-price-base="3"' in answer["html"]
    answer = post(client, "/admin/functions/parameters-preview", {"parameters": '[{"key": "a", "type": "x"}'}).get_json()
    assert not answer["ok"] and answer["errors"][0].startswith("Invalid JSON")
    answer = post(client, "/admin/functions/parameters-preview",
                  {"parameters": '[{"key": "a", "type": "number", "label": "A", "min": 3, "max": 1}]'}).get_json()
    assert answer["errors"] == ["#1 a.min: min (3) is more than max (1)."]
    login(client, support)
    assert post(client, "/admin/functions/parameters-preview", {"parameters": "[]"}).status_code == 403


# --- the site form and submitted values ---


def submit(client, key, fields, image=None, extra_files=None):
    data = {"csrf_token": csrf_token(client), "image": (io.BytesIO(image or image_bytes()), "photo.png")}
    data.update({parameters.field_name(k): v for k, v in fields.items()})
    for k, blob in (extra_files or {}).items():
        data[parameters.field_name(k)] = (io.BytesIO(blob), "mask.png")
    return client.post(f"/f/{key}", data=data, content_type="multipart/form-data")


def test_the_function_page_renders_every_type(app, client):
    with app.app_context():
        p.local_function("studio", parameters=EVERY_TYPE, price_per_use=2)
        user = p.funded_customer(10)
    login(client, user)
    html = client.get("/f/studio").get_data(as_text=True)
    assert '<textarea id="param-prompt" name="param-prompt" rows="3" maxlength="50"' in html
    assert 'id="param-style" name="param-style" maxlength="12"' in html and 'value="natural"' in html
    assert 'type="number" id="param-strength"' in html and 'step="0.1"' in html
    assert 'type="range" id="param-scale"' in html and 'min="1"' in html and 'max="4"' in html
    assert '<option value="best"' in html and "Best quality" in html
    assert 'type="radio" name="param-aspect" value="9:16"' in html
    assert 'role="switch" id="param-face"' in html
    assert 'id="param-seed"' in html and 'placeholder="Random"' in html
    assert 'type="file" id="param-mask"' in html
    assert 'data-price-multiplier=\'{"4": 2}\'' in html
    assert 'data-price-base="2" data-price-value>2<' in html


def test_every_type_reaches_the_provider_as_params_and_is_kept_on_the_job(app, client):
    mask = image_bytes(size=(20, 10), color=(0, 0, 0))
    with ReplicateServer() as server:
        with app.app_context():
            provider = p.replicate_provider(server, params={"steps": 30})
            p.add_function(provider, key="studio", parameters=EVERY_TYPE, price_per_use=2,
                           provider_config={"param_names": {"scale": "upscale_factor"}})
            user = p.funded_customer(20)
        login(client, user)
        resp = submit(client, "studio", {"prompt": "make it sunny", "style": "vivid", "strength": "0.7",
                                         "scale": "4", "model": "best", "aspect": "16:9", "face": "on",
                                         "seed": "1234"}, extra_files={"mask": mask})
        assert resp.status_code == 302, resp.get_data(as_text=True)
        p.drain(app)
        with app.app_context():
            job = db.session.scalars(sa.select(Job)).one()
            assert job.status == "done"
            # ×2 for scale 4, ×1.5 for the best model: 2 × 3 = 6 credits.
            assert job.credits_charged == 6 and p.balance(user.id) == 14
            mask_ref = job.params.pop("mask")
            assert job.params == {"prompt": "make it sunny", "style": "vivid", "strength": 0.7, "scale": 4,
                                  "model": "best", "aspect": "16:9", "face": True, "seed": 1234}
            assert mask_ref["content_type"] == "image/png"
        sent = next(r["json"]["input"] for r in server.requests if r["method"] == "POST")
        assert sent.pop("mask") == "data:image/png;base64," + base64.b64encode(mask).decode()
        assert sent.pop("image").startswith("data:image/png;base64,")
        assert sent == {"steps": 30, "prompt": "make it sunny", "style": "vivid", "strength": 0.7,
                        "upscale_factor": 4, "model": "best", "aspect": "16:9", "face": True, "seed": 1234}


def test_defaults_fill_in_and_an_empty_seed_is_random(app, client):
    definition = [{"key": "scale", "type": "slider", "label": "Scale", "min": 1, "max": 4, "default": 2},
                  {"key": "face", "type": "toggle", "label": "Faces", "default": True},
                  {"key": "seed", "type": "seed", "label": "Seed"}]
    values = parameters.clean(definition, {})
    assert values["scale"] == 2 and values["face"] is True and 0 <= values["seed"] <= parameters.SEED_MAX
    # A posted form without the checkbox means "off", not the default.
    assert parameters.clean(definition, *parameters.from_form(definition, {}, {}))["face"] is False


@pytest.mark.parametrize("fields, key, words", [
    ({"scale": "9"}, "scale", "from 1 to 4"),
    ({"scale": "2.5"}, "scale", "steps of 1"),
    ({"model": "secret-model"}, "model", "one of the options"),
    ({"aspect": "2:1"}, "aspect", "one of the options"),
    ({"prompt": "x" * 51}, "prompt", "at most 50 characters"),
    ({"prompt": ""}, "prompt", "required"),
    ({"strength": "lots"}, "strength", "enter a number"),
    ({"seed": "-1"}, "seed", "whole number"),
    ({"face": "maybe"}, "face", "on or off"),
])
def test_a_tampered_value_is_refused_with_no_debit(app, client, fields, key, words):
    with app.app_context():
        p.local_function("studio", parameters=EVERY_TYPE, price_per_use=2)
        user = p.funded_customer(10)
    login(client, user)
    resp = submit(client, "studio", {"prompt": "ok", **fields})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert f'id="param-{key}-error" class="field-error" role="alert">' in html and words in html
    # The form comes back as it was sent: the other values kept, a toggle left off still off.
    assert key == "prompt" or ">ok</textarea>" in html
    assert not re.search(r'id="param-face"[^>]*\bchecked\b', html)
    with app.app_context():
        assert p.jobs_count() == 0 and p.balance(user.id) == 10 == p.ledger_sum(user.id)


def test_values_outside_the_definition_are_refused_by_the_service(app):
    with app.app_context():
        fn = p.local_function("studio", parameters=EVERY_TYPE[:1])
        user = p.funded_customer(10)
        from app.services import jobs
        with pytest.raises(parameters.ParameterError) as refused:
            jobs.submit(user, fn.key, image_bytes(), params={"prompt": "hi", "webhook": "http://evil"})
        assert refused.value.fields == {"webhook": "is not a setting of this tool."}
        assert p.jobs_count() == 0 and p.balance(user.id) == 10


def test_a_second_image_that_is_not_an_image_is_refused_with_no_debit(app, client):
    with app.app_context():
        p.local_function("studio", parameters=EVERY_TYPE, price_per_use=2)
        user = p.funded_customer(10)
    login(client, user)
    resp = submit(client, "studio", {"prompt": "ok"}, extra_files={"mask": b"not an image at all"})
    assert resp.status_code == 400 and 'id="param-mask-error"' in resp.get_data(as_text=True)
    with app.app_context():
        assert p.jobs_count() == 0 and p.balance(user.id) == 10


def test_the_price_rule_changes_the_debit(app, client):
    with app.app_context():
        p.local_function("upscale", operation="upscale", price_per_use=3, parameters=[
            {"key": "scale", "type": "select", "label": "Scale", "options": [2, 4], "default": 2,
             "price_multiplier": {"4": 2}}])
        user = p.funded_customer(20)
    login(client, user)
    assert submit(client, "upscale", {"scale": "2"}).status_code == 302
    assert submit(client, "upscale", {"scale": "4"}).status_code == 302
    p.drain(app)
    with app.app_context():
        charged = db.session.scalars(sa.select(Job.credits_charged).order_by(Job.id)).all()
        assert charged == [3, 6] and p.balance(user.id) == 11 == p.ledger_sum(user.id)
        # The local provider read the value: a 4× upscale is twice as large as a 2× one.
        from PIL import Image
        from app.services import storage
        sizes = [Image.open(io.BytesIO(storage.read(j.output_ref))).size
                 for j in db.session.scalars(sa.select(Job).order_by(Job.id))]
        assert sizes == [(128, 96), (256, 192)]
    # Short of credits for the ×2 price: refused, nothing debited.
    with app.app_context():
        poor = p.funded_customer(5)
    login(client, poor)
    resp = submit(client, "upscale", {"scale": "4"})
    assert resp.status_code == 402
    with app.app_context():
        assert p.balance(poor.id) == 5 and p.jobs_count() == 2


def test_export_import_and_clone_carry_the_parameters(app):
    with app.app_context():
        fn = p.local_function("studio", parameters=EVERY_TYPE)
        data = catalog.export_function(fn)
        assert data["parameters"] == EVERY_TYPE
        copy = catalog.clone_function(fn)
        assert copy.parameters == EVERY_TYPE
        data["key"] = "studio-imported"
        imported, created = catalog.import_function(data)
        assert created and imported.parameters == EVERY_TYPE
        data["parameters"] = [{"key": "x", "type": "number", "label": "X", "min": 2, "max": 1}]
        with pytest.raises(catalog.CatalogImportError, match="min \\(2\\) is more than max \\(1\\)"):
            catalog.import_function(data)
        db.session.rollback()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditLog)
                                 .where(AuditLog.action.in_(("import", "clone")))) == 2
