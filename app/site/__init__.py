"""The customer site: catalog, function pages, account, pricing and CMS pages, and the gates the runtime
settings put in front of them (maintenance mode, sign-up, function pages, API)."""
from flask import Blueprint, abort, jsonify, render_template, request
from flask_login import current_user
from werkzeug.routing import BaseConverter

from app import security
from app.services import pageviews, parameters, settings
from app.services.urls import absolute_url

bp = Blueprint("site", __name__)

# First path segments maintenance mode leaves open: staff sign in and work, payment providers deliver webhooks,
# load balancers keep checking health.
MAINTENANCE_OPEN = frozenset({"admin", "healthz", "login", "logout", "readyz", "static", "webhooks"})


class SlugConverter(BaseConverter):
    """A CMS slug: what services.cms.SLUG accepts, so /<slug> never swallows files like /favicon.ico."""

    regex = r"[a-z0-9]+(?:-[a-z0-9]+)*"


def gate():
    """Before every request: what the owner switched off in Settings answers here, before any view runs."""
    first = request.path.split("/", 2)[1]
    if first in MAINTENANCE_OPEN or request.endpoint == "static":
        return None
    if settings.flag("maintenance") and not (current_user.is_authenticated and current_user.is_staff):
        message = settings.get("flags.maintenance_message")
        if first == "api":
            resp = jsonify({"error": message, "maintenance": True})
        else:
            resp = render_template("site/maintenance.html", message=message)
        return resp, 503, {"Retry-After": "300", "Cache-Control": "no-store"}
    if first == "api" and not settings.flag("api"):
        return jsonify({"error": "The API is switched off."}), 404
    if request.endpoint == "auth.signup" and not settings.flag("signup"):
        return render_template("errors/error.html", code=403, title="Sign-up is closed",
                               message="We are not accepting new accounts right now. Existing customers can "
                                       "still log in."), 403
    if request.endpoint == "site.function" and not settings.function_page_on(request.view_args["key"]):
        abort(404)
    return None


def init_app(app):
    from app.site import pages, routes, showcase  # noqa: F401  (attach the views to bp)
    from app.services import gallery
    from app.services import showcase as showcase_service

    app.url_map.converters["slug"] = SlugConverter
    app.register_blueprint(bp)
    # Stored files keep the sandbox policy storage.file_headers gives them: they are never a page of ours.
    security.view_options(app, routes.job_file, content_security_policy=None)
    for view in (showcase.prompt_image, showcase.example_image, showcase.showcase_image):
        security.view_options(app, view, content_security_policy=None)
    security.view_options(app, routes.job_thumbnail, content_security_policy=None)
    app.add_template_filter(parameters.rule_key, "rule_key")
    app.before_request(gate)
    app.after_request(lambda response: pageviews.record(response, request, current_user))
    app.context_processor(lambda: {"setting": settings.get, "flag": settings.flag, "absolute_url": absolute_url,
                                   "footer_links": gallery.footer_links,
                                   "showcase_item_for": showcase_service.item_for_job})

    @app.errorhandler(403)
    def forbidden(_error):
        return render_template("errors/error.html", code=403, title="Not allowed",
                               message="Your account does not have access to this page."), 403

    @app.errorhandler(404)
    def not_found(_error):
        return render_template("errors/error.html", code=404, title="Not found",
                               message="This page does not exist or is no longer available."), 404

    @app.errorhandler(413)
    def too_large(_error):
        return render_template("errors/error.html", code=413, title="File too large",
                               message="That upload is larger than we accept. Choose a smaller image."), 413

    @app.errorhandler(400)
    def bad_request(error):
        return render_template("errors/error.html", code=400, title="Bad request",
                               message=getattr(error, "description", "The request could not be understood.")), 400
