"""Sign-up, login and logout for staff and customers alike (one users table)."""
from flask import Blueprint

bp = Blueprint("auth", __name__)


def init_app(app):
    from app.auth import routes  # noqa: F401  (attaches the views to bp)
    from app.extensions import login_manager

    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "info"
    login_manager.user_loader(routes.load_user)
    app.register_blueprint(bp)
