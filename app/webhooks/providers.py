"""Provider webhooks at /webhooks/jobs/<job id>/<token>: a remote job changed; services.jobs believes it only
with the job's unguessable token and the provider's signature, then checks the job at once.
"""
import logging

from flask import Blueprint, jsonify, request

from app.extensions import csrf
from app.providers.base import WebhookRefused
from app.services import jobs

bp = Blueprint("provider_webhooks", __name__, url_prefix="/webhooks/jobs")
log = logging.getLogger(__name__)


@bp.route("/<int:job_id>/<token>", methods=["POST"])
@csrf.exempt
def receive(job_id, token):
    try:
        outcome = jobs.accept_webhook(job_id, token, request.headers, request.get_data())
    except jobs.UnknownWebhook:
        return jsonify({"error": "Not found."}), 404
    except WebhookRefused as exc:
        log.warning("webhook for job %s refused: %s", job_id, exc)
        return jsonify({"error": str(exc)}), 400
    return jsonify({"status": outcome})


def init_app(app):
    app.register_blueprint(bp)
