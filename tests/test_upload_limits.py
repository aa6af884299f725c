"""Bounded work: a hostile upload is refused before any pixel is decoded, and a local operation cannot make
an image bigger than its cap. Memory is measured, not timed.

tracemalloc does not see Pillow's pixel buffers (they come from C malloc), so the peak is the process's
resident high-water mark (VmHWM), reset in a forked child just before the call under test."""
import io
import multiprocessing

import pytest
from PIL import Image

from app.extensions import db
from app.providers import ProviderError, ProviderInput, registry
from app.services import uploads
from tests import pipeline as p
from tests.helpers import csrf_token, login
from tests.images import image_bytes, solid_png

PEAK_BOUND = 24 * 1024 * 1024  # decoding the disguised image alone takes 144 MB


def _kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def _measure(app, fn, data, results):
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset this process's resident high-water mark
    before = _kib("VmRSS")
    with app.app_context():
        try:
            uploads.inspect_upload(fn, data)
            outcome = None
        except uploads.SubmitError as exc:
            outcome = (exc.status, str(exc))
    results.put((outcome, (_kib("VmHWM") - before) * 1024))


def peak_memory_of_inspection(app, fn, data):
    """(refusal or None, peak extra bytes resident) for uploads.inspect_upload(fn, data) in a forked child."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_measure, args=(app, fn, data, results))
    child.start()
    outcome = results.get(timeout=60)
    child.join(timeout=10)
    return outcome


def _function(app, **fields):
    with app.app_context():
        fn = p.local_function("upscale", operation="upscale", max_file_size=2 * 1024 * 1024, **fields)
        db.session.refresh(fn)
        db.session.expunge(fn)
        return fn


@pytest.mark.parametrize("data,allowed,status,message", [
    # 20000×20000 single-colour PNG in 48 KB: over the pixel cap, read from the header alone.
    (solid_png(20000, 20000, bit_depth=1, color_type=0), ["PNG", "JPEG"], 413, "too many pixels"),
    # 6000×6000 PNG (within the pixel cap) named .jpg for a JPEG-only function: no PNG decoder may touch it.
    (solid_png(6000, 6000), ["JPEG"], 415, "PNG images are not accepted"),
], ids=["png-bomb", "disguised-png"])
def test_hostile_uploads_are_refused_before_decoding(app, client, data, allowed, status, message):
    assert len(data) < 128 * 1024
    fn = _function(app, allowed_formats=allowed)
    outcome, peak = peak_memory_of_inspection(app, fn, data)
    assert outcome[0] == status and message in outcome[1]
    assert peak < PEAK_BOUND, f"refusing it took {peak / 1048576:.0f} MB"
    # And through the site, nothing is charged.
    with app.app_context():
        user = p.funded_customer(10)
    login(client, user)
    resp = client.post("/f/upscale", data={"csrf_token": csrf_token(client), "image": (io.BytesIO(data), "photo.jpg")},
                       content_type="multipart/form-data")
    assert resp.status_code == status and message in resp.get_data(as_text=True)
    with app.app_context():
        assert p.balance(user.id) == 10 and p.jobs_count() == 0


def test_an_accepted_upload_is_still_decoded_in_full(app):
    fn = _function(app, allowed_formats=["PNG"])
    outcome, _peak = peak_memory_of_inspection(app, fn, image_bytes(size=(300, 200)))
    assert outcome is None
    with app.app_context():
        assert uploads.inspect_upload(fn, image_bytes(size=(300, 200)))["width"] == 300


def test_a_local_upscale_past_its_output_cap_fails_before_resizing():
    source = ProviderInput(image_bytes(size=(200, 100)), "image/png")
    local = registry.get("local")
    config = {"operation": "upscale", "params": {"scale": 4}, "max_output_pixels": 300_000}
    with pytest.raises(ProviderError, match="320,000 pixels; this provider makes at most 300,000"):
        local.process_image(source, config)
    out = local.process_image(source, {**config, "params": {"scale": 2}})
    assert Image.open(io.BytesIO(out.output)).size == (400, 200)
    # The input is decoded only as the format the upload check found, whatever its bytes say.
    with pytest.raises(ProviderError, match="could not be processed"):
        local.process_image(ProviderInput(image_bytes(fmt="GIF"), "image/png"), {"operation": "noop"})
