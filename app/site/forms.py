"""Customer forms (Flask-WTF: CSRF on every one)."""
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import SelectField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length

from app.models.showcase import REPORT_REASONS


class UploadForm(FlaskForm):
    image = FileField("Image", validators=[FileRequired("Choose an image to upload.")])
    submit = SubmitField("Process image")


class CancelForm(FlaskForm):
    submit = SubmitField("Cancel job")


class RedeemForm(FlaskForm):
    code = StringField("Code", validators=[DataRequired(), Length(max=40)], render_kw={"autocomplete": "off"})
    submit = SubmitField("Redeem")


class ShareForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired("Give your result a title."), Length(max=120)])
    submit = SubmitField("Share to showcase")


class ReportForm(FlaskForm):
    reason = SelectField("Reason", choices=[("", "Choose a reason")] + list(REPORT_REASONS),
                         validators=[DataRequired("Choose a reason for the report.")])
    details = TextAreaField("Details (optional)", validators=[Length(max=500)])
    submit = SubmitField("Send report")


class DeleteResultForm(FlaskForm):
    submit = SubmitField("Delete this result")
