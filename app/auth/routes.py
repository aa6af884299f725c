"""Login, logout and customer sign-up pages."""
from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from app.auth import bp
from app.auth.forms import LoginForm, SignupForm
from app.extensions import db
from app.models import User
from app.services import accounts, urls


def load_user(user_id):
    user = db.session.get(User, int(user_id))
    # A ban ends existing sessions at their next request.
    return user if user is not None and not user.is_banned else None


def _safe_next(default):
    # Only our own host: an open redirect would let a phishing link borrow our login page.
    return urls.safe_return(request.args.get("next"), default)


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("site.account"))
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(form.email.data, form.password.data)
        except accounts.AccountError as exc:
            db.session.rollback()
            flash(str(exc), "error")
            return render_template("auth/login.html", form=form), 401
        db.session.commit()
        login_user(user, remember=form.remember.data)
        default = url_for("admin.index") if user.is_staff else url_for("site.account")
        return redirect(_safe_next(default))
    return render_template("auth/login.html", form=form), (400 if form.errors else 200)


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    if current_user.is_authenticated:
        return redirect(url_for("site.account"))
    form = SignupForm()
    if form.validate_on_submit():
        try:
            user = accounts.create_user(form.email.data, form.password.data)
        except accounts.AccountError as exc:
            db.session.rollback()
            form.email.errors.append(str(exc))
            return render_template("auth/signup.html", form=form), 400
        db.session.commit()
        login_user(user)
        flash("Welcome to Neurapix! Your account is ready.", "success")
        return redirect(url_for("site.account"))
    return render_template("auth/signup.html", form=form), (400 if form.errors else 200)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("site.index"))
