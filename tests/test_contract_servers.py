"""The contract servers themselves: each speaks its documented API end to end over real HTTP."""
import base64
import io

import requests
from PIL import Image

from tests.contract_servers import ReplicateServer, RunPodServer

AUTH = {"Authorization": "Bearer test-token"}


def sample_png():
    img = Image.new("RGB", (4, 2))
    img.putdata([(i * 30, 200 - i * 20, 7) for i in range(8)])
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def data_uri(png):
    return "data:image/png;base64," + base64.b64encode(png).decode()


def assert_inverted(png_bytes):
    img = Image.open(io.BytesIO(png_bytes))
    assert img.format == "PNG"
    pixels = [img.getpixel((x, y)) for y in range(2) for x in range(4)]
    assert pixels == [(255 - i * 30, 55 + i * 20, 248) for i in range(8)]


def test_replicate_create_poll_and_fetch_output():
    with ReplicateServer() as srv:
        resp = requests.post(f"{srv.url}/v1/predictions", headers={**AUTH, "Prefer": "wait"},
                             json={"version": "owner/model:abc", "input": {"image": data_uri(sample_png())}})
        assert resp.status_code == 201
        pred = resp.json()
        assert pred["status"] == "starting" and pred["output"] is None and pred["error"] is None
        assert pred["urls"]["get"] == f"{srv.url}/v1/predictions/{pred['id']}"
        assert pred["urls"]["cancel"] == f"{srv.url}/v1/predictions/{pred['id']}/cancel"

        statuses = [requests.get(pred["urls"]["get"], headers=AUTH).json() for _ in range(2)]
        assert [p["status"] for p in statuses] == ["processing", "succeeded"]
        done = statuses[-1]
        assert done["output"] == f"{srv.url}/files/{pred['id']}.png"
        assert done["metrics"] == {"predict_time": 0.1, "total_time": 0.2} and done["completed_at"]

        output = requests.get(done["output"])  # no auth, like the delivery CDN
        assert output.headers["Content-Type"] == "image/png"
        assert_inverted(output.content)
        assert srv.paths("POST") == ["/v1/predictions"]
        assert srv.requests[0]["headers"]["prefer"] == "wait"
        assert srv.requests[0]["json"]["version"] == "owner/model:abc"


def test_replicate_model_route_fail_and_unreadable_image():
    with ReplicateServer(polls_before_done=0, image_key="img") as srv:
        create = f"{srv.url}/v1/models/acme/invert/predictions"
        bad = requests.post(create, headers=AUTH, json={"input": {"img": "bm90IGFuIGltYWdl"}}).json()
        assert requests.get(bad["urls"]["get"], headers=AUTH).json()["error"] == "cannot read input image"
        srv.mode = "fail"
        pred = requests.post(create, headers=AUTH, json={"input": {"img": data_uri(sample_png())}}).json()
        assert pred["model"] == "acme/invert"
        failed = requests.get(pred["urls"]["get"], headers=AUTH).json()
        assert (failed["status"], failed["error"], failed["output"]) == ("failed", "model crashed", None)
        assert requests.get(f"{srv.url}/files/{pred['id']}.png").status_code == 404


def test_replicate_hang_cancel_auth_and_unknown_id():
    with ReplicateServer(mode="hang") as srv:
        pred = requests.post(f"{srv.url}/v1/predictions", headers=AUTH,
                             json={"version": "v", "input": {"image": data_uri(sample_png())}}).json()
        for _ in range(3):
            assert requests.get(pred["urls"]["get"], headers=AUTH).json()["status"] == "processing"
        assert requests.post(pred["urls"]["cancel"], headers=AUTH).json()["status"] == "canceled"
        assert requests.get(pred["urls"]["get"], headers=AUTH).json()["status"] == "canceled"

        bad = requests.get(pred["urls"]["get"], headers={"Authorization": "Bearer nope"})
        assert (bad.status_code, bad.json()) == (401, {"detail": "Invalid token."})
        missing = requests.get(f"{srv.url}/v1/predictions/doesnotexist", headers=AUTH)
        assert (missing.status_code, missing.json()) == (404, {"detail": "Not found."})


def test_replicate_error_modes():
    with ReplicateServer(mode="error500") as srv:
        body = {"version": "v", "input": {"image": data_uri(sample_png())}}
        assert requests.post(f"{srv.url}/v1/predictions", headers=AUTH, json=body).status_code == 500
        srv.mode = "error503"
        assert requests.post(f"{srv.url}/v1/predictions", headers=AUTH, json=body).status_code == 503
        srv.mode, srv.fail_count = "error_then_ok", 2
        codes = [requests.post(f"{srv.url}/v1/predictions", headers=AUTH, json=body).status_code for _ in range(3)]
        assert codes == [500, 500, 201]


def test_runpod_run_status_base64_output_and_health():
    with RunPodServer(polls_before_done=2) as srv:
        base = f"{srv.url}/v2/ep123"
        job = requests.post(f"{base}/run", headers=AUTH, json={"input": {"image": data_uri(sample_png())}}).json()
        assert job["status"] == "IN_QUEUE"
        bodies = [requests.get(f"{base}/status/{job['id']}", headers=AUTH).json() for _ in range(3)]
        assert [b["status"] for b in bodies] == ["IN_PROGRESS", "IN_PROGRESS", "COMPLETED"]
        assert {"delayTime", "executionTime"} <= bodies[-1].keys()
        assert_inverted(base64.b64decode(bodies[-1]["output"]["image"]))

        health = requests.get(f"{base}/health", headers=AUTH).json()
        assert health["jobs"]["completed"] == 1 and health["workers"] == {"idle": 1, "running": 0}
        assert srv.paths("GET")[0] == f"/v2/ep123/status/{job['id']}"


def test_runpod_runsync_url_output_and_bare_key():
    with RunPodServer(output_style="url", token="rp-key") as srv:
        plain_b64 = base64.b64encode(sample_png()).decode()
        resp = requests.post(f"{srv.url}/v2/ep/runsync", headers={"authorization": "rp-key"},
                             json={"input": {"image": plain_b64}})
        body = resp.json()
        assert body["status"] == "COMPLETED" and body["output"] == {"image_url": f"{srv.url}/files/{body['id']}.png"}
        assert_inverted(requests.get(body["output"]["image_url"]).content)
        denied = requests.post(f"{srv.url}/v2/ep/run", headers=AUTH, json={"input": {}})
        assert (denied.status_code, denied.json()) == (401, {"detail": "Invalid token."})


def test_runpod_hang_cancel_fail_and_retry():
    with RunPodServer(mode="hang", polls_before_done=0) as srv:
        base = f"{srv.url}/v2/ep"
        job = requests.post(f"{base}/run", headers=AUTH, json={"input": {"image": data_uri(sample_png())}}).json()
        assert requests.get(f"{base}/status/{job['id']}", headers=AUTH).json()["status"] == "IN_PROGRESS"
        assert requests.post(f"{base}/cancel/{job['id']}", headers=AUTH).json() == {"id": job["id"],
                                                                                     "status": "CANCELLED"}
        srv.mode = "fail"
        job = requests.post(f"{base}/run", headers=AUTH, json={"input": {"image": data_uri(sample_png())}}).json()
        failed = requests.get(f"{base}/status/{job['id']}", headers=AUTH).json()
        assert (failed["status"], failed["error"]) == ("FAILED", "model crashed")
        srv.mode = "ok"
        assert requests.post(f"{base}/retry/{job['id']}", headers=AUTH).json()["status"] == "IN_QUEUE"
        assert requests.get(f"{base}/status/{job['id']}", headers=AUTH).json()["status"] == "COMPLETED"


def test_runpod_error_modes():
    with RunPodServer(mode="error_then_ok", fail_count=1) as srv:
        body = {"input": {"image": data_uri(sample_png())}}
        first = requests.post(f"{srv.url}/v2/ep/run", headers=AUTH, json=body)
        assert first.status_code == 500 and "error" in first.json()
        assert requests.post(f"{srv.url}/v2/ep/run", headers=AUTH, json=body).status_code == 200
        srv.mode = "error500"
        assert requests.post(f"{srv.url}/v2/ep/runsync", headers=AUTH, json=body).status_code == 500
        srv.mode = "error503"
        assert requests.post(f"{srv.url}/v2/ep/run", headers=AUTH, json=body).status_code == 503
