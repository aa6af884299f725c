"""Local results are encoded the way each function chooses: PNG at a fast compression level by default, WebP or
JPEG at the function's quality; the choice is made in the admin and travels with exports."""
import io

import pytest
from PIL import Image

from app.extensions import db
from app.models import AIFunction
from app.providers import ProviderInput, registry
from app.providers.local import PNG_COMPRESS_LEVEL
from app.services import catalog, jobs, storage
from tests import pipeline as p
from tests.helpers import form_values, login, make_user
from tests.images import image_bytes


@pytest.mark.parametrize("fmt,quality,content_type", [("PNG", 90, "image/png"), ("WEBP", 70, "image/webp"),
                                                      ("JPEG", 80, "image/jpeg")])
def test_each_function_chooses_its_output_format(app, fmt, quality, content_type):
    with app.app_context():
        fn = p.local_function(output_format=fmt, output_quality=quality)
        user = p.funded_customer(10)
        job_id = jobs.submit(user, fn.key, image_bytes(size=(48, 32))).id
    p.drain(app)
    with app.app_context():
        job = p.job(job_id)
        assert job.status == "done" and job.output_content_type == content_type
        assert Image.open(io.BytesIO(storage.read(job.output_ref))).format == fmt


def test_png_results_use_the_fast_compression_level():
    source = ProviderInput(image_bytes(size=(64, 64)), "image/png")
    out = registry.get("local").process_image(source, {"operation": "noop", "params": {}, "output_format": "PNG"})
    expected = io.BytesIO()
    Image.open(io.BytesIO(source.data)).save(expected, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    assert PNG_COMPRESS_LEVEL == 1 and out.output == expected.getvalue()


def test_jpeg_quality_follows_the_function(ctx):
    source = ProviderInput(image_bytes(size=(64, 64)), "image/png")
    sizes = [len(registry.get("local").process_image(source, {"operation": "noop", "params": {},
                                                               "output_format": "JPEG", "output_quality": q}).output)
             for q in (20, 95)]
    assert sizes[0] < sizes[1]


def test_output_format_is_set_in_the_admin_and_validated(app, client):
    with app.app_context():
        fn_id = p.local_function().id
        login(client, make_user("admin"))
    data = form_values(client.get(f"/admin/functions/edit/?id={fn_id}").get_data(as_text=True))
    assert data["output_format"] == "PNG" and data["output_quality"] == "90"
    refused = client.post(f"/admin/functions/edit/?id={fn_id}", data={**data, "output_quality": "0"})
    assert refused.status_code == 200 and "quality from 1 to 100" in refused.get_data(as_text=True)
    saved = client.post(f"/admin/functions/edit/?id={fn_id}",
                        data={**data, "output_format": "WEBP", "output_quality": "75"})
    assert saved.status_code == 302
    with app.app_context():
        fn = db.session.get(AIFunction, fn_id)
        assert (fn.output_format, fn.output_quality) == ("WEBP", 75)
        exported = catalog.export_function(fn)
        assert (exported["output_format"], exported["output_quality"]) == ("WEBP", 75)
        with pytest.raises(catalog.CatalogImportError, match="output_format"):
            catalog.import_function({**exported, "output_format": "SVG"})
