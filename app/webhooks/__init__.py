"""Payment webhooks at /webhooks/<gateway>: verified by the gateway, applied once by services.payments.

No session, no CSRF token (the signature is the proof); always JSON; fast answers.
"""
import logging

from flask import Blueprint, abort, jsonify, request

from app.extensions import csrf
from app.services import payments
from app.services.payment_events import WebhookRejected

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
log = logging.getLogger(__name__)


@bp.route("/<name>", methods=["POST"])
@csrf.exempt
def receive(name):
    try:
        event, outcome = payments.receive_webhook(name, request.get_data(), request.headers)
    except payments.UnknownGateway:
        abort(404)
    except WebhookRejected as exc:
        log.warning("%s webhook rejected: %s", name, exc)
        return jsonify({"error": str(exc)}), 400
    if event is not None:
        log.info("%s event %s (%s): %s", name, event.event_id, event.source_type, outcome)
    return jsonify({"status": outcome})


def init_app(app):
    from app.webhooks import providers

    app.register_blueprint(bp)
    providers.init_app(app)
