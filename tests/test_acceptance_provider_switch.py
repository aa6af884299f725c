"""The product's acceptance rule: switching a function Replicate → RunPod → Local in the admin takes
effect on the very next job, with the web app and a separate worker.py process never restarted."""
import io

import sqlalchemy as sa
from PIL import Image

from app.extensions import db
from app.models import AIFunction, Job, Provider
from tests import pipeline as p
from tests.contract_servers import ReplicateServer, RunPodServer
from tests.helpers import csrf_token, form_values, login, make_user
from tests.images import image_bytes
from tests.workers import WorkerProcess, wait_for

SOURCE = image_bytes(size=(40, 30))


def _submit_and_wait(client):
    resp = client.post("/f/restore", data={"csrf_token": csrf_token(client), "image": (io.BytesIO(SOURCE), "me.png")},
                       content_type="multipart/form-data")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    status_url = resp.headers["Location"] + ".json"
    state = wait_for(lambda: (s := client.get(status_url).get_json())["status"] in ("done", "failed") and s,
                     timeout=60, what="the job to finish")
    assert state["status"] == "done", state
    return Image.open(io.BytesIO(client.get(state["output_url"]).data))


def _switch_provider(admin_client, fn_id, provider_id, provider_config):
    """The owner's action: open the function's edit form in the admin, pick another provider, save."""
    page = admin_client.get(f"/admin/functions/edit/?id={fn_id}").get_data(as_text=True)
    data = form_values(page)
    data["provider"] = str(provider_id)
    data["provider_config"] = provider_config
    resp = admin_client.post(f"/admin/functions/edit/?id={fn_id}", data=data)
    assert resp.status_code == 302, resp.get_data(as_text=True)


def test_switching_provider_applies_to_next_job(app):
    inverted = Image.eval(Image.open(io.BytesIO(SOURCE)).convert("RGB"), lambda v: 255 - v)
    with ReplicateServer(token="r8-secret") as replicate, RunPodServer(token="rp-secret") as runpod:
        with app.app_context():
            rep = p.replicate_provider(replicate)
            rp = p.runpod_provider(runpod)
            local = p.add_provider("local", name="Local", config={"timeout": 30, "retries": 0})
            fn = p.add_function(rep, key="restore", price_per_use=1)
            customer = p.funded_customer(10)
            admin = make_user("admin")
            ids = fn.id, rp.id, local.id
        web, owner = app.test_client(), app.test_client()
        login(web, customer)
        login(owner, admin)

        with WorkerProcess() as worker:
            # 1. Replicate.
            out = _submit_and_wait(web)
            assert out.convert("RGB").tobytes() == inverted.tobytes()
            create = next(r for r in replicate.requests if r["method"] == "POST")
            assert create["path"] == "/v1/models/acme/restore/predictions"
            assert create["headers"]["authorization"] == "Bearer r8-secret"
            assert create["json"]["input"]["image"].startswith("data:image/png;base64,")
            assert runpod.requests == []

            # 2. The owner switches to RunPod in the admin; the next job goes there.
            _switch_provider(owner, ids[0], ids[1], "{}")
            out = _submit_and_wait(web)
            assert out.convert("RGB").tobytes() == inverted.tobytes()
            assert runpod.paths("POST")[0] == "/v2/ep-test/run"
            assert runpod.requests[0]["headers"]["authorization"] == "Bearer rp-secret"
            replicate_calls = len(replicate.requests)

            # 3. And to Local, where Pillow upscales in the worker itself.
            _switch_provider(owner, ids[0], ids[2], '{"operation": "upscale", "params": {"scale": 2}}')
            runpod_calls = len(runpod.requests)
            out = _submit_and_wait(web)
            assert out.size == (80, 60)
            assert len(replicate.requests) == replicate_calls and len(runpod.requests) == runpod_calls

            assert worker.alive()  # one worker process served all three jobs

    with app.app_context():
        jobs = db.session.scalars(sa.select(Job).order_by(Job.id)).all()
        assert [j.provider_key for j in jobs] == ["replicate", "runpod", "local"]
        assert p.balance(customer.id) == 7 == p.ledger_sum(customer.id)
        assert db.session.get(AIFunction, ids[0]).provider_id == ids[2]
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Provider)) == 3
