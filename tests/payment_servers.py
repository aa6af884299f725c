"""Contract servers for the payment APIs our code calls (see CONTRACTS.md): Stripe (form-encoded, /v1/...,
Checkout Sessions priced from its own price list) and PayPal (OAuth2 token, Orders v2 create and capture,
verify-webhook-signature). They record what they receive, and build the webhook events the real services would
send for what happened on them (a session completed, an invoice paid, a capture made)."""
import base64
import json
import re
import threading
import time
import uuid
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

# Stripe price id → (unit amount in minor units, currency, recurring interval or None)
STRIPE_PRICES = {"price_pack": (500, "usd", None), "price_pro": (1900, "usd", "month"),
                 "price_acme": (99900, "usd", "month")}


def _new_id(prefix, size=14):
    return f"{prefix}{uuid.uuid4().hex[:size]}"


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

    def paths(self):
        return [r["path"] for r in self.requests]


def _nested(form, prefix):
    """Stripe's bracket notation back to a dict: metadata[order_id]=5 → {"order_id": "5"} for prefix "metadata"."""
    pattern = re.compile(re.escape(prefix) + r"\[([^\]]+)\]$")
    return {m.group(1): value for key, value in form.items() if (m := pattern.match(key))}


class StripeAPIServer(_Server):
    """POST /v1/customers, /v1/checkout/sessions, /v1/billing_portal/sessions with Bearer sk_… auth.
    Sessions are priced from the server's own price list, as Stripe prices them from the price id."""

    def __init__(self, secret_key="sk_test_contract", prices=None):
        super().__init__()
        self.secret_key = secret_key
        self.prices = dict(STRIPE_PRICES if prices is None else prices)
        self.sessions, self.subscriptions, self.coupons = {}, {}, {}

    def form(self, index):
        """A recorded request's form fields, Stripe's bracket notation kept as keys (line_items[0][price])."""
        return dict(parse_qsl(self.requests[index]["raw"]))

    def answer(self, record):
        if record["headers"].get("authorization") != f"Bearer {self.secret_key}":
            return 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}
        form = dict(parse_qsl(record["raw"]))
        if record["path"] == "/v1/customers":
            return 200, {"id": _new_id("cus_"), "object": "customer", "email": form.get("email")}
        if record["path"] == "/v1/checkout/sessions":
            return self._create_session(form)
        if record["path"] == "/v1/coupons":
            coupon_id = _new_id("co_")
            self.coupons[coupon_id] = {"id": coupon_id, "object": "coupon", "percent_off": float(form["percent_off"]),
                                       "duration": form.get("duration"), "name": form.get("name")}
            return 200, self.coupons[coupon_id]
        if record["path"] == "/v1/billing_portal/sessions":
            object_id = _new_id("")
            return 200, {"id": f"bps_{object_id}", "object": "billing_portal.session",
                         "url": f"https://billing.stripe.com/p/session/{object_id}"}
        return 404, {"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}}

    def _create_session(self, form):
        price_id = form.get("line_items[0][price]")
        if price_id is None and "line_items[0][price_data][unit_amount]" in form:
            # An inline price, as Checkout accepts one instead of a price id.
            price_id = "inline"
            self.prices["inline"] = (int(form["line_items[0][price_data][unit_amount]"]),
                                     form["line_items[0][price_data][currency]"],
                                     form.get("line_items[0][price_data][recurring][interval]"))
        if price_id not in self.prices:
            return 400, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                   "param": "line_items[0][price]", "message": f"No such price: '{price_id}'"}}
        amount, currency, interval = self.prices[price_id]
        subtotal = amount
        coupon_id = form.get("discounts[0][coupon]")
        if coupon_id is not None:
            if coupon_id not in self.coupons:
                return 400, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                       "param": "discounts[0][coupon]", "message": f"No such coupon: '{coupon_id}'"}}
            # Stripe rounds the discount to the nearest minor unit.
            amount -= int(Decimal(amount) * Decimal(str(self.coupons[coupon_id]["percent_off"])) / 100
                          + Decimal("0.5"))
        mode = form.get("mode")
        if (mode == "subscription") != bool(interval):
            return 400, {"error": {"type": "invalid_request_error", "param": "mode",
                                   "message": "The price's type does not match the Checkout Session's mode."}}
        session_id = _new_id("cs_test_", 24)
        session = {
            "id": session_id, "object": "checkout.session", "mode": mode, "status": "open",
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
            "client_reference_id": form.get("client_reference_id"), "metadata": _nested(form, "metadata"),
            "customer": form.get("customer"), "amount_subtotal": subtotal, "amount_total": amount,
            "currency": currency, "payment_status": "unpaid", "payment_intent": None, "subscription": None,
            "success_url": form.get("success_url"), "cancel_url": form.get("cancel_url"),
            "_price": price_id, "_subscription_metadata": _nested(form, "subscription_data[metadata]"),
        }
        self.sessions[session_id] = session
        return 200, self._public(session)

    @staticmethod
    def _public(obj):
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    @staticmethod
    def event(event_type, obj, created=None, event_id=None):
        return {"id": event_id or _new_id("evt_", 24), "object": "event", "type": event_type,
                "api_version": "2024-06-20", "created": created or int(time.time()), "livemode": False,
                "data": {"object": obj}}

    def complete(self, session_id, event_id=None, created=None, **changes):
        """The buyer paid on Stripe's page: the checkout.session.completed event Stripe sends (fields in
        `changes` replace the session's, e.g. to model what a tampered or unpaid session would carry)."""
        session = self.sessions[session_id]
        session.update(status="complete", payment_status="paid")
        if session["mode"] == "payment":
            session["payment_intent"] = session["payment_intent"] or _new_id("pi_", 24)
        else:
            sub_id = session["subscription"] or _new_id("sub_", 24)
            session["subscription"] = sub_id
            self.subscriptions[sub_id] = {"id": sub_id, "object": "subscription", "customer": session["customer"],
                                          "status": "active", "metadata": session["_subscription_metadata"],
                                          "_price": session["_price"]}
        return self.event("checkout.session.completed", {**self._public(session), **changes}, created=created,
                          event_id=event_id)

    def invoice_paid(self, subscription_id, amount_paid=None, currency=None, event_type="invoice.payment_succeeded",
                     invoice_id=None, created=None):
        """A subscription invoice paid (first period or renewal); its subscription's metadata rides along."""
        sub = self.subscriptions[subscription_id]
        amount, price_currency, _interval = self.prices[sub["_price"]]
        return self.event(event_type, {
            "id": invoice_id or _new_id("in_", 24), "object": "invoice", "customer": sub["customer"],
            "subscription": subscription_id, "status": "paid", "billing_reason": "subscription_cycle",
            "amount_paid": amount if amount_paid is None else amount_paid,
            "currency": currency or price_currency, "payment_intent": _new_id("pi_", 24),
            "subscription_details": {"metadata": sub["metadata"]},
            "lines": {"data": [{"price": {"id": sub["_price"]}}]}}, created=created)

    def subscription_changed(self, subscription_id, status, created, event_type="customer.subscription.updated"):
        sub = self.subscriptions[subscription_id]
        sub["status"] = status
        obj = {**self._public(sub), "items": {"data": [{"price": {"id": sub["_price"]},
                                                        "current_period_end": created + 30 * 86400}]}}
        return self.event(event_type, obj, created=created)


class PayPalAPIServer(_Server):
    """OAuth2 client-credentials token; Orders v2 create, (buyer) approve and capture; verify-webhook-signature
    (SUCCESS only for the expected transmission signature and webhook id: PayPal checks the signature against its
    certificate; the contract is the answer)."""

    def __init__(self, client_id="paypal-client", secret="paypal-secret", good_signature="valid-sig",
                 webhook_id="WH-123"):
        super().__init__()
        self.client_id, self.secret, self.good_signature = client_id, secret, good_signature
        self.webhook_id = webhook_id
        self.token = "A21AA" + uuid.uuid4().hex
        self.orders, self._by_request_id = {}, {}

    def answer(self, record):
        path = record["path"]
        if path == "/v1/oauth2/token":
            expected = "Basic " + base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()
            if record["headers"].get("authorization") != expected or "grant_type=client_credentials" not in record["raw"]:
                return 401, {"error": "invalid_client", "error_description": "Client Authentication failed"}
            return 200, {"access_token": self.token, "token_type": "Bearer", "expires_in": 32400}
        if record["headers"].get("authorization") != f"Bearer {self.token}":
            return 401, {"name": "AUTHENTICATION_FAILURE", "message": "Authentication failed."}
        try:
            body = json.loads(record["raw"] or "{}")
        except ValueError:
            return 400, {"name": "INVALID_REQUEST", "message": "Request is not well-formed."}
        request_id = record["headers"].get("paypal-request-id")
        if path == "/v1/notifications/verify-webhook-signature":
            ok = (body.get("transmission_sig") == self.good_signature and body.get("webhook_id") == self.webhook_id
                  and (body.get("webhook_event") or {}).get("id"))
            return 200, {"verification_status": "SUCCESS" if ok else "FAILURE"}
        if path == "/v2/checkout/orders":
            if request_id and request_id in self._by_request_id:
                return 200, self._by_request_id[request_id]  # PayPal-Request-Id: the first answer again
            status, answer = self._create_order(body)
            if request_id and status == 201:
                self._by_request_id[request_id] = answer
            return status, answer
        match = re.fullmatch(r"/v2/checkout/orders/([A-Z0-9]+)/capture", path)
        if match:
            key = f"capture:{request_id}"
            if request_id and key in self._by_request_id:
                return 201, self._by_request_id[key]
            status, answer = self._capture(match.group(1))
            if request_id and status == 201:
                self._by_request_id[key] = answer
            return status, answer
        return 404, {"name": "RESOURCE_NOT_FOUND", "message": "The specified resource does not exist."}

    @staticmethod
    def _unprocessable(issue):
        return 422, {"name": "UNPROCESSABLE_ENTITY", "details": [{"issue": issue}],
                     "message": "The requested action could not be performed."}

    def _create_order(self, body):
        units = body.get("purchase_units") or []
        amount = (units[0].get("amount") or {}) if units else {}
        if (body.get("intent") not in ("CAPTURE", "AUTHORIZE") or not units
                or not re.fullmatch(r"[A-Z]{3}", str(amount.get("currency_code")))
                or not re.fullmatch(r"\d{1,10}(\.\d{1,2})?", str(amount.get("value")))):
            return 400, {"name": "INVALID_REQUEST", "message": "Request is not well-formed, syntactically "
                                                               "incorrect, or violates schema."}
        order_id = uuid.uuid4().hex[:17].upper()
        action = "payer-action" if (body.get("payment_source") or {}).get("paypal") else "approve"
        order = {"id": order_id, "intent": body["intent"],
                 "status": "PAYER_ACTION_REQUIRED" if action == "payer-action" else "CREATED",
                 "purchase_units": units, "payment_source": body.get("payment_source") or {},
                 "links": [{"href": f"{self.url}/v2/checkout/orders/{order_id}", "rel": "self", "method": "GET"},
                           {"href": f"https://www.sandbox.paypal.com/checkoutnow?token={order_id}", "rel": action,
                            "method": "GET"},
                           {"href": f"{self.url}/v2/checkout/orders/{order_id}/capture", "rel": "capture",
                            "method": "POST"}]}
        self.orders[order_id] = order
        return 201, {k: v for k, v in order.items() if k != "payment_source"}

    def approve(self, order_id):
        """The buyer approves on PayPal's page. PayPal assigns the capture's id; here it is picked now, so a test
        can deliver the capture webhook at the same moment as the buyer's return."""
        order = self.orders[order_id]
        order.update(status="APPROVED", capture_id=uuid.uuid4().hex[:17].upper())
        return self.return_url(order_id)

    def return_url(self, order_id):
        """Where PayPal sends the buyer back: our return_url with ?token=<PayPal order id>&PayerID=…"""
        context = self.orders[order_id]["payment_source"]["paypal"]["experience_context"]
        return f"{context['return_url']}?token={order_id}&PayerID=BUYER123"

    def _capture(self, order_id):
        order = self.orders.get(order_id)
        if order is None:
            return 404, {"name": "RESOURCE_NOT_FOUND", "details": [{"issue": "INVALID_RESOURCE_ID"}]}
        if order["status"] == "COMPLETED":
            return self._unprocessable("ORDER_ALREADY_CAPTURED")
        if order["status"] != "APPROVED":
            return self._unprocessable("ORDER_NOT_APPROVED")
        unit = order["purchase_units"][0]
        capture = {"id": order["capture_id"], "status": "COMPLETED", "amount": unit["amount"],
                   "custom_id": unit.get("custom_id"), "final_capture": True,
                   "seller_protection": {"status": "ELIGIBLE"},
                   "links": [{"href": f"{self.url}/v2/payments/captures/{order['capture_id']}", "rel": "self"},
                             {"href": f"{self.url}/v2/checkout/orders/{order_id}", "rel": "up"}]}
        order.update(status="COMPLETED", capture=capture)
        return 201, {"id": order_id, "status": "COMPLETED",
                     "purchase_units": [{"reference_id": unit.get("reference_id"), "custom_id": unit.get("custom_id"),
                                         "payments": {"captures": [capture]}}],
                     "payer": {"payer_id": "BUYER123", "email_address": "buyer@example.com"},
                     "links": [{"href": f"{self.url}/v2/checkout/orders/{order_id}", "rel": "self"}]}

    def capture_completed_event(self, order_id, event_id=None):
        """The PAYMENT.CAPTURE.COMPLETED webhook PayPal sends for an order's capture (its resource is the capture,
        naming the order in supplementary_data)."""
        order = self.orders[order_id]
        unit = order["purchase_units"][0]
        capture = order.get("capture") or {"id": order["capture_id"], "status": "COMPLETED", "amount": unit["amount"],
                                           "custom_id": unit.get("custom_id"), "final_capture": True}
        return {"id": event_id or f"WH-{uuid.uuid4().hex[:20].upper()}", "event_type": "PAYMENT.CAPTURE.COMPLETED",
                "resource_type": "capture", "summary": "Payment completed",
                "resource": {**capture, "supplementary_data": {"related_ids": {"order_id": order_id}}}}
