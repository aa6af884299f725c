"""Login (password, then the second factor when the account has one), logout, customer sign-up, and the
account security page (two-factor authentication, password, sign out everywhere)."""
import json
import time

from flask import Response, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required

from app.auth import bp
from app.auth.forms import (ChangeEmailForm, DeleteAccountForm, DisableTwoFactorForm, EmailPreferencesForm, EnrolForm,
                            ForgotPasswordForm, LoginForm, PasswordChangeForm, PasswordResetForm,
                            ResendVerificationForm, SignOutEverywhereForm, SignupForm, TwoFactorForm)
from app.extensions import db, limiter
from app.models import User
from app.services import accounts, referrals, sessions, two_factor, urls

# Between the password and the second factor: who passed the password, and until when that counts.
PENDING = "neurapix_2fa_pending"
PENDING_SECONDS = 300
ENROL_SECRET = "neurapix_2fa_enrol"


def _me():
    """The signed-in User itself (services refresh and audit it; a proxy will not do)."""
    return current_user._get_current_object()


def _ip_limit():
    return current_app.config["LOGIN_IP_LIMIT"]


def _safe_next(default):
    # Only our own host: an open redirect would let a phishing link borrow our login page.
    return urls.safe_return(request.args.get("next"), default)


def _finish_login(user, remember):
    accounts.record_login(user)
    sessions.begin(user, remember)
    if two_factor.required_for(user) and not user.has_2fa:
        flash("Your role requires two-factor authentication: set it up to use the admin.", "info")
        return redirect(url_for("auth.security"))
    default = url_for("admin.index") if user.is_staff else url_for("site.account")
    return redirect(_safe_next(default))


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"])
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
        if user.has_2fa:
            # Not signed in yet: the session only remembers that the password passed, for a few minutes.
            session.clear()
            session[PENDING] = {"user": user.id, "version": user.session_version, "remember": form.remember.data,
                                "until": int(time.time()) + PENDING_SECONDS}
            return redirect(url_for("auth.second_factor", next=request.args.get("next")))
        return _finish_login(user, form.remember.data)
    return render_template("auth/login.html", form=form), (400 if form.errors else 200)


def _pending_user():
    pending = session.get(PENDING)
    if not pending or pending.get("until", 0) < time.time():
        return None, None
    user = db.session.get(User, pending["user"])
    if user is None or user.is_banned or user.session_version != pending["version"] or not user.has_2fa:
        return None, None
    return user, pending


@bp.route("/login/2fa", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"])
def second_factor():
    user, pending = _pending_user()
    if user is None:
        session.pop(PENDING, None)
        flash("Log in with your email and password first.", "info")
        return redirect(url_for("auth.login"))
    form = TwoFactorForm()
    if form.validate_on_submit():
        try:
            accounts.second_factor(user, form.code.data)
        except accounts.AccountError as exc:
            form.code.errors.append(str(exc))
            return render_template("auth/second_factor.html", form=form), 401
        session.pop(PENDING, None)
        return _finish_login(user, pending["remember"])
    return render_template("auth/second_factor.html", form=form), (400 if form.errors else 200)


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"])
def signup():
    if current_user.is_authenticated:
        return redirect(url_for("site.account"))
    form = SignupForm()
    if form.validate_on_submit():
        try:
            accounts.sign_up(form.email.data, form.password.data, session.get(referrals.SESSION_KEY))
        except accounts.AccountError as exc:
            db.session.rollback()
            form.email.errors.append(str(exc))
            return render_template("auth/signup.html", form=form), 400
        # The same answer whether the address was new or already had an account: sign-up reveals nobody.
        flash("Thanks! If this address is new, your account is ready: log in below, and open the link we emailed "
              "you to confirm the address. If it already had an account, log in with that account's password.",
              "success")
        return redirect(url_for("auth.login"))
    return render_template("auth/signup.html", form=form), (400 if form.errors else 200)


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"])
def reset_password(token):
    """The emailed reset link: choose a new password (every session of the account then ends). The token is in
    the path, not a query string, and services.accounts makes it die once the password changes."""
    form = PasswordResetForm()
    try:
        user = accounts.user_for_reset(token)
    except accounts.AccountError as exc:
        return render_template("errors/error.html", code=400, title="Link not valid", message=str(exc)), 400
    if form.validate_on_submit():
        try:
            accounts.reset_password(token, form.password.data)
        except accounts.AccountError as exc:
            db.session.rollback()
            form.password.errors.append(str(exc))
        else:
            flash("Your password is set. Log in with it now.", "success")
            return redirect(url_for("auth.login"))
    return render_template("auth/reset_password.html", form=form, email=user.email), (400 if form.errors else 200)


@bp.route("/forgot-password", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"])
def forgot_password():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        accounts.request_password_reset(form.email.data)
        # The same answer whether or not the address has an account.
        flash("If an account uses this address, we have emailed it a link to choose a new password.", "info")
        return redirect(url_for("auth.login"))
    return render_template("auth/forgot_password.html", form=form), (400 if form.errors else 200)


@bp.route("/verify-email/<token>")
def verify_email(token):
    try:
        accounts.verify_email(token)
    except accounts.AccountError as exc:
        return render_template("errors/error.html", code=400, title="Link not valid", message=str(exc)), 400
    flash("Thank you: your email address is confirmed.", "success")
    return redirect(url_for("site.account") if current_user.is_authenticated else url_for("auth.login"))


@bp.route("/confirm-email/<token>")
def confirm_email(token):
    """The link sent to a new address: the account switches to it, and every session signs in again."""
    try:
        accounts.confirm_email_change(token)
    except accounts.AccountError as exc:
        return render_template("errors/error.html", code=400, title="Link not valid", message=str(exc)), 400
    sessions.end()
    flash("Your email address is changed. Log in with the new one.", "success")
    return redirect(url_for("auth.login"))


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    accounts.logout(_me())
    sessions.end()
    flash("You are logged out.", "info")
    return redirect(url_for("site.index"))


# --- the signed-in person's own security page (staff and customers alike) ---


def _security_page(status=200, **forms):
    user = _me()
    enrol = {}
    if not user.has_2fa:
        secret = two_factor.unseal(session.get(ENROL_SECRET))
        if not secret:
            secret = two_factor.new_secret()
            session[ENROL_SECRET] = two_factor.seal(secret)
        enrol = {"secret": secret, "qr": two_factor.qr_svg(two_factor.provisioning_uri(user, secret))}
    return render_template(
        "auth/security.html", enrol=enrol, required=two_factor.required_for(user),
        codes_left=two_factor.recovery_codes_left(user),
        enrol_form=forms.get("enrol_form") or EnrolForm(), disable_form=forms.get("disable_form") or
        DisableTwoFactorForm(), password_form=forms.get("password_form") or PasswordChangeForm(),
        everywhere_form=SignOutEverywhereForm(), recovery_codes=forms.get("recovery_codes"),
        email_form=forms.get("email_form") or ChangeEmailForm(), resend_form=ResendVerificationForm(),
        preferences_form=EmailPreferencesForm(job_failed=user.email_job_failed, language=user.language),
        delete_form=forms.get("delete_form") or DeleteAccountForm(),
    ), status


@bp.route("/account/security")
@login_required
def security():
    return _security_page()


@bp.route("/account/security/2fa", methods=["POST"])
@login_required
def enable_2fa():
    form = EnrolForm()
    secret = two_factor.unseal(session.get(ENROL_SECRET))
    if current_user.has_2fa or not secret:
        return redirect(url_for("auth.security"))
    if form.validate_on_submit():
        try:
            codes = two_factor.enable(_me(), secret, form.code.data)
        except two_factor.CodeError as exc:
            form.code.errors.append(str(exc))
        else:
            session.pop(ENROL_SECRET, None)
            flash("Two-factor authentication is on. Keep your recovery codes somewhere safe.", "success")
            return _security_page(recovery_codes=codes)
    return _security_page(400, enrol_form=form)


@bp.route("/account/security/2fa/off", methods=["POST"])
@login_required
def disable_2fa():
    form = DisableTwoFactorForm()
    if form.validate_on_submit():
        try:
            accounts.disable_own_two_factor(_me(), form.password.data)
        except accounts.AccountError as exc:
            form.password.errors.append(str(exc))
        else:
            flash("Two-factor authentication is off.", "info")
            return redirect(url_for("auth.security"))
    return _security_page(400, disable_form=form)


@bp.route("/account/security/password", methods=["POST"])
@login_required
def change_password():
    form = PasswordChangeForm()
    if form.validate_on_submit():
        try:
            accounts.change_own_password(_me(), form.current.data, form.password.data)
        except accounts.AccountError as exc:
            db.session.rollback()
            form.current.errors.append(str(exc))
        else:
            # Every other session ended with the old version; this one continues under the new one.
            sessions.begin(_me())
            flash("Password changed. Every other session and device has been signed out.", "success")
            return redirect(url_for("auth.security"))
    return _security_page(400, password_form=form)


@bp.route("/account/security/sign-out-everywhere", methods=["POST"])
@login_required
def sign_out_everywhere():
    if SignOutEverywhereForm().validate_on_submit():
        accounts.sign_out_everywhere(_me(), _me())
        sessions.end()
        flash("You are signed out on every device, this one included.", "info")
        return redirect(url_for("auth.login"))
    return redirect(url_for("auth.security"))


@bp.route("/account/security/email", methods=["POST"])
@login_required
@limiter.limit(_ip_limit)
def change_email():
    form = ChangeEmailForm()
    if form.validate_on_submit():
        try:
            accounts.request_email_change(_me(), form.new_email.data, form.password.data)
        except accounts.AccountError as exc:
            db.session.rollback()
            form.new_email.errors.append(str(exc))
        else:
            flash("We emailed a confirmation link to the new address; your address changes when you open it.", "info")
            return redirect(url_for("auth.security"))
    return _security_page(400, email_form=form)


@bp.route("/account/security/verify", methods=["POST"])
@login_required
@limiter.limit(_ip_limit)
def resend_verification():
    if ResendVerificationForm().validate_on_submit():
        try:
            accounts.resend_verification(_me())
        except accounts.AccountError as exc:
            flash(str(exc), "info")
        else:
            flash(f"We emailed a new confirmation link to {current_user.email}.", "info")
    return redirect(url_for("auth.security"))


@bp.route("/account/security/email-preferences", methods=["POST"])
@login_required
def email_preferences():
    form = EmailPreferencesForm()
    if form.validate_on_submit():
        try:
            accounts.set_email_preferences(_me(), job_failed=form.job_failed.data, language=form.language.data)
        except accounts.AccountError as exc:
            flash(f"Email preferences not saved: {exc}", "error")
        else:
            flash("Email preferences saved.", "success")
    return redirect(url_for("auth.security"))


@bp.route("/account/data.json")
@login_required
def export_data():
    """Everything we hold about the signed-in customer, as a JSON download."""
    body = json.dumps(accounts.export_data(_me()), indent=2, ensure_ascii=False)
    return Response(body, mimetype="application/json",
                    headers={"Content-Disposition": 'attachment; filename="neurapix-account.json"',
                             "Cache-Control": "no-store"})


@bp.route("/account/delete", methods=["POST"])
@login_required
@limiter.limit(_ip_limit)
def delete_account():
    form = DeleteAccountForm()
    if form.validate_on_submit():
        try:
            accounts.delete_own_account(_me(), form.password.data)
        except accounts.AccountError as exc:
            db.session.rollback()
            flash(f"Your account was not deleted: {exc}", "error")
        else:
            sessions.end()
            flash("Your account is deleted. Thank you for using us.", "info")
            return redirect(url_for("site.index"))
    return _security_page(400, delete_form=form)
