"""Local HTTP servers speaking Replicate's and RunPod serverless's public APIs (see CONTRACTS.md), plus a
custom API of neither shape for the generic HTTP provider.

They record every request and "process" the input image by inverting it, so provider code is tested for real.
With `latency` set, a job ends that many seconds after it was created (else after `polls_before_done` polls), and
a job created with a webhook URL is reported there when it ends: Replicate's signed the Standard Webhooks way,
RunPod's unsigned. `delays` holds the requests up ({"create": s, "file": s}), as slow real services do.
"""
import base64
import binascii
import hashlib
import heapq
import hmac
import io
import json
import os
import re
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from PIL import Image, ImageOps

# Generic job states; each server maps them onto its own status vocabulary.
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED = "queued", "running", "succeeded", "failed", "canceled"
TERMINAL = {SUCCEEDED, FAILED, CANCELED}
MODES = {"ok", "fail", "error500", "error_then_ok", "error503", "hang"}


def invert_png(data):
    """The servers' "model": decode data (a data URI or bare base64) and return the inverted image as PNG."""
    if not isinstance(data, str):
        raise ValueError("cannot read input image")
    if data.startswith("data:"):
        data = data.partition(",")[2]
    try:
        img = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
        out = io.BytesIO()
        ImageOps.invert(img.convert("RGB")).save(out, format="PNG")
    except (binascii.Error, OSError) as exc:
        raise ValueError("cannot read input image") from exc
    return out.getvalue()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real APIs: clients may reuse their connections
    # Headers and body leave in two writes: without TCP_NODELAY each kept-alive answer would wait ~40 ms for the
    # client's delayed ACK, which no real API makes its clients do.
    disable_nagle_algorithm = True

    def do_GET(self):
        self.server.owner._handle(self)

    do_POST = do_GET

    def log_message(self, format, *args):
        pass  # keep pytest output clean


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many clients at once (the benchmarks) must queue, not be reset


class ContractServer:
    """Base: ThreadingHTTPServer on 127.0.0.1:0 in a daemon thread."""

    routes = []  # (method, path regex, handler method name); subclasses fill it

    def __init__(self, token="test-token", mode="ok", polls_before_done=1, fail_count=2, image_key="image",
                 latency=None, delays=None):
        self._lock = threading.Lock()
        self.latency = latency
        self.delays = dict(delays or {})
        self.webhooks = []  # (job id, URL, status code answered) of every delivery
        self.deliver_webhooks = True  # False: a lost webhook (the provider's or the network's fault)
        self.peak_open = 0  # most jobs open at once (created, not yet ended)
        self._due = []  # heap of (time, job id) for jobs that end by the clock
        self._clock = threading.Condition(self._lock)
        self._senders = None
        self.expected_token = token
        self.mode = mode
        self.polls_before_done = polls_before_done
        self.fail_count = fail_count
        self.image_key = image_key
        # A hostile provider: these bytes (served as output_type) instead of the inverted image.
        self.output, self.output_type = None, "image/png"
        self.url = ""
        self.requests = []
        self.jobs = {}
        self._httpd = None
        self._thread = None

    @property
    def mode(self):
        return self._mode

    @mode.setter
    def mode(self, value):
        assert value in MODES, value
        # Switching modes (e.g. back to "error_then_ok") starts the failure count afresh.
        with self._lock:
            self._mode, self._failed_creates = value, 0

    def start(self):
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        # A short poll interval keeps stop() (which waits for the serve loop) fast.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self._senders = ThreadPoolExecutor(max_workers=8, thread_name_prefix="webhooks")
        self._running = True
        self._timer = threading.Thread(target=self._settle_due_jobs, daemon=True)
        self._timer.start()
        return self

    def stop(self):
        if self._senders:
            with self._lock:
                self._running = False
                self._clock.notify()
            self._timer.join()
            self._senders.shutdown(wait=True)
            self._senders = None
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def paths(self, method=None):
        with self._lock:
            return [r["path"] for r in self.requests if method is None or r["method"] == method.upper()]

    # --- request plumbing -------------------------------------------------------------------

    def _handle(self, h):
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in h.headers.items()}
        with self._lock:
            self.requests.append({"method": h.command, "path": h.path, "headers": headers, "json": body,
                                  "peer": h.client_address[1]})  # the client's port: one per connection
        path = h.path.split("?", 1)[0]
        # Output files are public, like Replicate's delivery CDN: no auth.
        if h.command == "GET" and (m := re.fullmatch(r"/files/([\w-]+)\.png", path)):
            time.sleep(self.delays.get("file", 0))
            with self._lock:
                job = self.jobs.get(m.group(1))
                png = job["png"] if job and job["state"] == SUCCEEDED else None
            return self._send(h, 200, png, self.output_type) if png else self._send(h, 404, self._error("Not found."))
        if not self._authorized(headers.get("authorization", "")):
            return self._send(h, 401, {"detail": "Invalid token."})
        for method, pattern, name in self.routes:
            if h.command == method and (m := re.fullmatch(pattern, path)):
                return self._send(h, *getattr(self, name)(body or {}, **m.groupdict()))
        self._send(h, 404, self._error("Not found."))

    def _send(self, h, status, payload, content_type="image/png"):
        is_file = isinstance(payload, bytes)
        data = payload if is_file else json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", content_type if is_file else "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _authorized(self, value):
        return value == f"Bearer {self.expected_token}"

    def _error(self, message):
        return {"detail": message}

    # --- job lifecycle (callers hold no lock) -----------------------------------------------

    def _refuse_create(self):
        """(status, body) when the current mode makes this create call fail, else None."""
        time.sleep(self.delays.get("create", 0))
        with self._lock:
            if self.mode == "error503":
                return 503, self._error("Service unavailable.")
            if self.mode == "error_then_ok" and self._failed_creates < self.fail_count:
                self._failed_creates += 1
                return 500, self._error("Internal server error.")
            if self.mode == "error500":
                return 500, self._error("Internal server error.")
        return None

    def _new_job(self, job_id, input_, **extra):
        # The outcome is fixed at creation (from the mode then in force) and revealed by polling.
        job = {"id": job_id, "input": input_, "state": QUEUED, "polls": 0, "png": None, "error": None,
               "created": time.time(), "started": None, "completed": None, **extra}
        if self.mode == "hang":
            job["outcome"] = RUNNING
        elif self.mode == "fail":
            job["outcome"], job["error"] = FAILED, "model crashed"
        else:
            try:
                png = invert_png(input_.get(self.image_key))
                job["png"], job["outcome"] = (png if self.output is None else self.output), SUCCEEDED
            except ValueError:
                job["outcome"], job["error"] = FAILED, "cannot read input image"
        with self._lock:
            self.jobs[job_id] = job
            self.peak_open = max(self.peak_open, sum(j["state"] not in TERMINAL for j in self.jobs.values()))
            if self.latency is not None and job["outcome"] != RUNNING:
                heapq.heappush(self._due, (job["created"] + self.latency, job_id))
                self._clock.notify()
        return job

    def _settle_due_jobs(self):
        """The server's clock: ends each job at its time and reports it to its webhook, if it has one."""
        with self._lock:
            while self._running:
                if not self._due or self._due[0][0] > time.time():
                    self._clock.wait(timeout=min(0.5, self._due[0][0] - time.time()) if self._due else 0.5)
                    continue
                _at, job_id = heapq.heappop(self._due)
                job = self.jobs[job_id]
                if job["state"] in TERMINAL:
                    continue
                self._move(job, job["outcome"])
                if job.get("webhook") and self.deliver_webhooks:
                    self._senders.submit(self.send_webhook, job_id)

    def send_webhook(self, job_id, **overrides):
        """POST the job's final state to its webhook URL (tests call it again to deliver a duplicate)."""
        with self._lock:
            job = dict(self.jobs[job_id])
        body = json.dumps(self._webhook_body(job)).encode()
        headers = {"Content-Type": "application/json", **self._webhook_headers(job, body), **overrides}
        try:
            status = requests.post(job["webhook"], data=body, headers=headers, timeout=10).status_code
        except requests.RequestException:
            status = None
        with self._lock:
            self.webhooks.append((job_id, job["webhook"], status))
        return status

    def _webhook_body(self, job):
        raise NotImplementedError

    def _webhook_headers(self, job, body):
        return {}

    def _move(self, job, state):
        now = time.time()
        if state != QUEUED and job["started"] is None:
            job["started"] = now
        if state in TERMINAL:
            job["completed"] = now
        job["state"] = state

    def _advance(self, job_id, cancel=False):
        """Count one GET poll on a job (or cancel it); returns a snapshot, or None for an unknown id."""
        with self._lock:
            job = self.jobs.get(job_id)
            if job and job["state"] not in TERMINAL and cancel:
                self._move(job, CANCELED)
            elif job and job["state"] not in TERMINAL:
                job["polls"] += 1
                if self.latency is None:
                    done = job["outcome"] != RUNNING and job["polls"] > self.polls_before_done
                    self._move(job, job["outcome"] if done else RUNNING)
                else:  # the clock ends it (see _settle_due_jobs)
                    self._move(job, RUNNING)
            return dict(job) if job else None


def _iso(ts):
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if ts else None


class ReplicateServer(ContractServer):
    """Replicate's HTTP API under /v1. `Prefer: wait` is accepted but answered at once, as the docs allow."""

    routes = [
        ("POST", r"/v1/predictions", "_create"),
        ("POST", r"/v1/(?P<kind>models|deployments)/(?P<owner>[^/]+)/(?P<name>[^/]+)/predictions", "_create"),
        ("GET", r"/v1/predictions/(?P<job_id>\w+)", "_get"),
        ("POST", r"/v1/predictions/(?P<job_id>\w+)/(?P<cancel>cancel)", "_get"),
        ("GET", r"/v1/webhooks/default/secret", "_webhook_secret"),
    ]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.webhook_secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()

    def _webhook_secret(self, body):
        return 200, {"key": self.webhook_secret}

    def _webhook_body(self, job):
        return self._prediction(job)

    def _webhook_headers(self, job, body, stamp=None):
        """Standard Webhooks: a webhook id stable across retries, a timestamp, and v1 HMAC-SHA256 signatures."""
        webhook_id, stamp = f"msg_{job['id']}", str(int(stamp or time.time()))
        key = base64.b64decode(self.webhook_secret.removeprefix("whsec_"))
        signature = base64.b64encode(hmac.new(key, f"{webhook_id}.{stamp}.".encode() + body, hashlib.sha256)
                                     .digest()).decode()
        return {"webhook-id": webhook_id, "webhook-timestamp": stamp, "webhook-signature": f"v1,{signature}"}
    statuses = {QUEUED: "starting", RUNNING: "processing", SUCCEEDED: "succeeded", FAILED: "failed",
                CANCELED: "canceled"}

    def _create(self, body, kind=None, owner=None, name=None):
        if refused := self._refuse_create():
            return refused
        if kind is None and not body.get("version"):
            return 422, {"detail": "version is required"}
        version = body.get("version", "hidden")  # model/deployment routes don't name a version
        model = f"{owner}/{name}" if owner else version.split(":")[0]
        job_id = base64.b32encode(uuid.uuid4().bytes).decode().lower().rstrip("=")
        # Only "completed" events are sent, and only to a job that asked for them (or for every event).
        events = body.get("webhook_events_filter") or ["start", "output", "logs", "completed"]
        webhook = body.get("webhook") if "completed" in events else None
        job = self._new_job(job_id, body.get("input") or {}, version=version, model=model, webhook=webhook)
        return 201, self._prediction(job)

    def _get(self, body, job_id, cancel=None):
        job = self._advance(job_id, cancel=bool(cancel))
        return (200, self._prediction(job)) if job else (404, self._error("Not found."))

    def _prediction(self, job):
        done = job["state"] == SUCCEEDED
        base = f"{self.url}/v1/predictions/{job['id']}"
        # Echo the input but shorten data URIs, which would otherwise bloat every poll.
        echo = {k: v[:64] + "..." if isinstance(v, str) and len(v) > 256 else v
                for k, v in job["input"].items()}
        return {
            "id": job["id"], "model": job["model"], "version": job["version"],
            "status": self.statuses[job["state"]], "input": echo,
            "output": f"{self.url}/files/{job['id']}.png" if done else None,
            "error": job["error"] if job["state"] == FAILED else None, "logs": "",
            "created_at": _iso(job["created"]), "started_at": _iso(job["started"]),
            "completed_at": _iso(job["completed"]),
            "urls": {"get": base, "cancel": f"{base}/cancel", "stream": f"{self.url}/v1/streams/{job['id']}",
                     "web": f"{self.url}/p/{job['id']}"},
            "metrics": {"predict_time": 0.1, "total_time": 0.2} if done else {},
        }


class RunPodServer(ContractServer):
    """RunPod's serverless endpoint API under /v2/{endpoint_id}; any endpoint id is accepted."""

    routes = [
        ("POST", r"/v2/(?P<endpoint>[^/]+)/run", "_run"),
        ("POST", r"/v2/(?P<endpoint>[^/]+)/runsync", "_runsync"),
        ("GET", r"/v2/(?P<endpoint>[^/]+)/status/(?P<job_id>[\w-]+)", "_status"),
        ("POST", r"/v2/(?P<endpoint>[^/]+)/cancel/(?P<job_id>[\w-]+)", "_cancel"),
        ("POST", r"/v2/(?P<endpoint>[^/]+)/retry/(?P<job_id>[\w-]+)", "_retry"),
        ("GET", r"/v2/(?P<endpoint>[^/]+)/health", "_health"),
    ]
    statuses = {QUEUED: "IN_QUEUE", RUNNING: "IN_PROGRESS", SUCCEEDED: "COMPLETED", FAILED: "FAILED",
                CANCELED: "CANCELLED"}

    def __init__(self, output_style="base64", **kwargs):
        assert output_style in ("base64", "url"), output_style
        super().__init__(**kwargs)
        self.output_style = output_style

    def _authorized(self, value):
        # The docs show both `Bearer <key>` and the bare key.
        return super()._authorized(value) or value == self.expected_token

    def _error(self, message):
        return {"error": message}

    def _run(self, body, endpoint):
        if refused := self._refuse_create():
            return refused
        job = self._new_job(f"{uuid.uuid4()}-u1", body.get("input") or {}, endpoint=endpoint,
                            webhook=body.get("webhook"))
        return 200, {"id": job["id"], "status": "IN_QUEUE"}

    def _webhook_body(self, job):
        return self._job_body(job)  # RunPod posts the /status body, unsigned

    def _runsync(self, body, endpoint):
        status, payload = self._run(body, endpoint)
        if status != 200:
            return status, payload
        # A synchronous run has no polls to wait for: settle the job now (a hung one stays IN_PROGRESS).
        with self._lock:
            job = self.jobs[payload["id"]]
            self._move(job, job["outcome"])
            job = dict(job)
        return 200, self._job_body(job)

    def _status(self, body, endpoint, job_id):
        job = self._advance(job_id)
        return (200, self._job_body(job)) if job else (404, self._error("job not found"))

    def _cancel(self, body, endpoint, job_id):
        job = self._advance(job_id, cancel=True)
        if job is None:
            return 404, self._error("job not found")
        return 200, {"id": job_id, "status": self.statuses[job["state"]]}

    def _retry(self, body, endpoint, job_id):
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None or job["state"] != FAILED:
                return 400, self._error("only FAILED or TIMED_OUT jobs can be retried")
        # Re-run under the current mode, keeping the id.
        self._new_job(job_id, job["input"], endpoint=endpoint, retried=True)
        return 200, {"id": job_id, "status": "IN_QUEUE"}

    def _health(self, body, endpoint):
        with self._lock:
            count = Counter(j["state"] for j in self.jobs.values())
            retried = sum(bool(j.get("retried")) for j in self.jobs.values())
        return 200, {
            "jobs": {"completed": count[SUCCEEDED], "failed": count[FAILED], "inProgress": count[RUNNING],
                     "inQueue": count[QUEUED], "retried": retried},
            "workers": {"idle": 1, "running": 0},
        }

    def _job_body(self, job):
        out = {"id": job["id"], "status": self.statuses[job["state"]]}
        if job["started"]:
            out["delayTime"] = int((job["started"] - job["created"]) * 1000)
        if job["completed"]:
            out["executionTime"] = int((job["completed"] - job["started"]) * 1000)
        if job["state"] == SUCCEEDED:
            out["output"] = ({"image": base64.b64encode(job["png"]).decode()} if self.output_style == "base64"
                             else {"image_url": f"{self.url}/files/{job['id']}.png"})
        elif job["state"] == FAILED:
            out["error"] = job["error"]
        return out


class CustomImageAPIServer(ContractServer):
    """An in-house style API shaped like neither of the above, for the generic HTTP provider: the key in
    X-Api-Key, jobs under /api/v2/jobs wrapped in {"job": ...}, outputs as file links, and a synchronous
    /api/v2/convert that answers with base64."""

    routes = [
        ("POST", r"/api/v2/jobs", "_create"),
        ("GET", r"/api/v2/jobs/(?P<job_id>[\w-]+)", "_get"),
        ("POST", r"/api/v2/jobs/(?P<job_id>[\w-]+)/(?P<abort>abort)", "_get"),
        ("POST", r"/api/v2/convert", "_convert"),
    ]
    states = {QUEUED: "PENDING", RUNNING: "RUNNING", SUCCEEDED: "FINISHED", FAILED: "ERRORED", CANCELED: "ABORTED"}

    def __init__(self, **kwargs):
        super().__init__(**{"image_key": "picture", **kwargs})
        self._current = threading.local()  # each request has its own handler thread

    def _handle(self, h):
        # The base checks only the Authorization header; this API's key travels in X-Api-Key.
        self._current.api_key = h.headers.get("X-Api-Key", "")
        super()._handle(h)

    def _authorized(self, value):
        return self._current.api_key == self.expected_token

    def _error(self, message):
        return {"error": {"message": message}}

    def _create(self, body):
        if refused := self._refuse_create():
            return refused
        task = body.get("task")
        if not isinstance(task, dict) or "picture" not in task:
            return 422, self._error("task.picture is required")
        return 202, self._job_body(self._new_job(str(uuid.uuid4()), task))

    def _get(self, body, job_id, abort=None):
        job = self._advance(job_id, cancel=bool(abort))
        return (200, self._job_body(job)) if job else (404, self._error("job not found"))

    def _convert(self, body):
        status, payload = self._create(body)
        if status != 202:
            return status, payload
        # Synchronous: settle the job now; a hung one is what a gateway would cut off.
        with self._lock:
            job = self.jobs[payload["job"]["uuid"]]
            self._move(job, job["outcome"])
            job = dict(job)
        if job["state"] == SUCCEEDED:
            return 200, {"output": {"b64": base64.b64encode(job["png"]).decode()}}
        if job["state"] == RUNNING:
            return 504, self._error("conversion timed out")
        return 422, self._error(job["error"])

    def _job_body(self, job):
        out = {"uuid": job["id"], "state": self.states[job["state"]]}
        if job["state"] == SUCCEEDED:
            out["result"] = {"files": [{"href": f"{self.url}/files/{job['id']}.png"}]}
        elif job["state"] == FAILED:
            out["message"] = job["error"]
        return {"job": out}
