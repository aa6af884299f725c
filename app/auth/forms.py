"""Forms for the auth and account-security pages (Flask-WTF: CSRF on every one), and the email and password
validators every form that takes one shares (the admin's user form included)."""
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from app.services import accounts, passwords


class ValidEmail:
    """services.accounts.normalise_email as a WTForms validator: one rule for every form and the CLI."""

    def __call__(self, _form, field):
        try:
            field.data = accounts.normalise_email(field.data)
        except accounts.AccountError as exc:
            raise ValidationError(str(exc)) from None


class StrongPassword:
    """services.passwords.policy_error as a WTForms validator (empty passes: pair with DataRequired/Optional)."""

    def __call__(self, form, field):
        if not field.data:
            return
        email = form.email.data if "email" in form else None
        problem = passwords.policy_error(field.data, email)
        if problem:
            raise ValidationError(problem)


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), ValidEmail()])
    password = PasswordField("Password", validators=[DataRequired()])
    remember = BooleanField("Keep me signed in")
    submit = SubmitField("Log in")


class SignupForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), ValidEmail(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), StrongPassword()],
                             description=f"At least {passwords.MIN_LENGTH} characters, not a common password.")
    confirm = PasswordField("Repeat password", validators=[EqualTo("password", "Passwords do not match.")])
    submit = SubmitField("Create account")


class TwoFactorForm(FlaskForm):
    code = StringField("Code from your authenticator app, or a recovery code",
                       validators=[DataRequired(), Length(max=32)], render_kw={"autocomplete": "one-time-code"})
    submit = SubmitField("Verify")


class EnrolForm(FlaskForm):
    code = StringField("6-digit code from the app", validators=[DataRequired(), Length(max=16)],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"})
    submit = SubmitField("Turn on two-factor authentication")


class DisableTwoFactorForm(FlaskForm):
    password = PasswordField("Your password", validators=[DataRequired()])
    submit = SubmitField("Turn off two-factor authentication")


class PasswordChangeForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired()])
    password = PasswordField("New password", validators=[DataRequired(), StrongPassword()],
                             description=f"At least {passwords.MIN_LENGTH} characters, not a common password.")
    confirm = PasswordField("Repeat new password", validators=[EqualTo("password", "Passwords do not match.")])
    submit = SubmitField("Change password")


class PasswordResetForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired(), StrongPassword()],
                             description=f"At least {passwords.MIN_LENGTH} characters, not a common password.")
    confirm = PasswordField("Repeat new password", validators=[EqualTo("password", "Passwords do not match.")])
    submit = SubmitField("Set password")


class SignOutEverywhereForm(FlaskForm):
    submit = SubmitField("Sign out everywhere")


class ForgotPasswordForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), ValidEmail()])
    submit = SubmitField("Email me a reset link")


class ChangeEmailForm(FlaskForm):
    new_email = EmailField("New email address", validators=[DataRequired(), ValidEmail(), Length(max=254)])
    password = PasswordField("Your password", validators=[DataRequired()])
    submit = SubmitField("Send a confirmation link")


class ResendVerificationForm(FlaskForm):
    submit = SubmitField("Send the confirmation email again")


class EmailPreferencesForm(FlaskForm):
    job_failed = BooleanField("Email me when a job fails and its credits are refunded")
    language = StringField("Language for emails", validators=[Length(max=16)],
                           description="A language code such as en, de or pt-br; empty means the site's language.")
    submit = SubmitField("Save email preferences")


class DeleteAccountForm(FlaskForm):
    password = PasswordField("Your password", validators=[DataRequired()])
    submit = SubmitField("Delete my account")
