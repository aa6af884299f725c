"""Customer forms (Flask-WTF: CSRF on every one)."""
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import SubmitField


class UploadForm(FlaskForm):
    image = FileField("Image", validators=[FileRequired("Choose an image to upload.")])
    submit = SubmitField("Process image")


class CancelForm(FlaskForm):
    submit = SubmitField("Cancel job")
