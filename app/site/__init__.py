"""The customer site: catalog, function pages, account and pricing."""
from flask import Blueprint, render_template

bp = Blueprint("site", __name__)


def init_app(app):
    from app.site import routes  # noqa: F401  (attaches the views to bp)

    app.register_blueprint(bp)

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
