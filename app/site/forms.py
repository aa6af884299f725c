"""Customer forms (Flask-WTF: CSRF on every one)."""
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import StringField, SubmitField
from wtforms.validators import DataRequired, Length


class UploadForm(FlaskForm):
    image = FileField("Image", validators=[FileRequired("Choose an image to upload.")])
    submit = SubmitField("Process image")


class CancelForm(FlaskForm):
    submit = SubmitField("Cancel job")


class RedeemForm(FlaskForm):
    code = StringField("Code", validators=[DataRequired(), Length(max=40)], render_kw={"autocomplete": "off"})
    submit = SubmitField("Redeem")


class DeleteResultForm(FlaskForm):
    submit = SubmitField("Delete this result")
