"""Sign-up, login (with two-factor authentication) and logout for staff and customers alike (one users
table), and the gates in front of every request: session lifetimes and 2FA required for staff roles."""
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

bp = Blueprint("auth", __name__)


def session_gate():
    """Before every request: end expired sessions; keep staff who must enrol in 2FA out of the admin."""
    from app.services import sessions, two_factor

    reason = sessions.check()
    if reason:
        flash(reason, "info")
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    if (request.path.startswith("/admin") and current_user.is_authenticated and not current_user.has_2fa
            and two_factor.required_for(current_user)):
        flash("Your role requires two-factor authentication: set it up to use the admin.", "info")
        return redirect(url_for("auth.security"))
    return None


def init_app(app):
    from app.auth import routes  # noqa: F401  (attaches the views to bp)
    from app.extensions import limiter, login_manager
    from app.services import sessions

    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "info"
    login_manager.user_loader(sessions.load_user)
    limiter.init_app(app)
    app.register_blueprint(bp)
    app.before_request(session_gate)

    @app.errorhandler(429)
    def too_many(_error):
        return render_template("errors/error.html", code=429, title="Too many attempts",
                               message="Too many attempts from your network. Wait a minute and try again."), 429
