"""Contract servers for the payment APIs our code calls: Stripe (form-encoded, /v1/...) and PayPal
(OAuth2 token + verify-webhook-signature). They record what they receive, like the provider servers."""
import base64
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl


class _Server:
    def __init__(self):
        self.requests = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                record = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "raw": raw}
                with server._lock:
                    server.requests.append(record)
                status, body = server.answer(record)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_port}"

    def __enter__(self):
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *_exc):
        self._httpd.shutdown()
        self._httpd.server_close()


class StripeAPIServer(_Server):
    """POST /v1/customers, /v1/checkout/sessions, /v1/billing_portal/sessions with Bearer sk_… auth."""

    def __init__(self, secret_key="sk_test_contract"):
        super().__init__()
        self.secret_key = secret_key

    def form(self, index):
        """A recorded request's form fields, Stripe's bracket notation kept as keys (line_items[0][price])."""
        return dict(parse_qsl(self.requests[index]["raw"]))

    def answer(self, record):
        if record["headers"].get("authorization") != f"Bearer {self.secret_key}":
            return 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}
        object_id = uuid.uuid4().hex[:14]
        if record["path"] == "/v1/customers":
            return 200, {"id": f"cus_{object_id}", "object": "customer", "email": self.form(-1).get("email")}
        if record["path"] == "/v1/checkout/sessions":
            return 200, {"id": f"cs_test_{object_id}", "object": "checkout.session",
                         "url": f"https://checkout.stripe.com/c/pay/cs_test_{object_id}",
                         "mode": self.form(-1).get("mode")}
        if record["path"] == "/v1/billing_portal/sessions":
            return 200, {"id": f"bps_{object_id}", "object": "billing_portal.session",
                         "url": f"https://billing.stripe.com/p/session/{object_id}"}
        return 404, {"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}}


class PayPalAPIServer(_Server):
    """OAuth2 client-credentials token, then verify-webhook-signature: SUCCESS only for the expected
    transmission signature (PayPal checks it against its certificate; the contract is the answer)."""

    def __init__(self, client_id="paypal-client", secret="paypal-secret", good_signature="valid-sig"):
        super().__init__()
        self.client_id, self.secret, self.good_signature = client_id, secret, good_signature
        self.token = "A21AA" + uuid.uuid4().hex

    def answer(self, record):
        if record["path"] == "/v1/oauth2/token":
            expected = "Basic " + base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()
            if record["headers"].get("authorization") != expected or "grant_type=client_credentials" not in record["raw"]:
                return 401, {"error": "invalid_client", "error_description": "Client Authentication failed"}
            return 200, {"access_token": self.token, "token_type": "Bearer", "expires_in": 32400}
        if record["path"] == "/v1/notifications/verify-webhook-signature":
            if record["headers"].get("authorization") != f"Bearer {self.token}":
                return 401, {"name": "AUTHENTICATION_FAILURE"}
            body = json.loads(record["raw"])
            ok = body.get("transmission_sig") == self.good_signature and body.get("webhook_event", {}).get("id")
            return 200, {"verification_status": "SUCCESS" if ok else "FAILURE"}
        return 404, {"name": "RESOURCE_NOT_FOUND"}
