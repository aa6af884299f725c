"""Public gallery pages: the prompt gallery, the showcase (share, report), landing images and the favicon.

Thin views over services.gallery and services.showcase. Every image goes out through `image_response`: an image type
only, nosniff, a disposition and the sandbox policy of stored files (services.storage.file_headers).
"""
from flask import (Response, abort, current_app, flash, redirect, render_template, request, send_from_directory,
                   url_for)
from flask_login import current_user, login_required

from app.extensions import db, limiter
from app.models import Job, ShowcaseItem
from app.models.showcase import REPORT_REASONS
from app.services import cms, gallery, settings, showcase, storage
from app.site import bp
from app.services.uploads import SUFFIXES
from app.site.forms import CancelForm, ReportForm, ShareForm


def image_response(data=None, ref=None, content_type=None, name="image", cache="public, max-age=300"):
    """A stored image (bytes, or a ref read here or redirected to S3) with the stored-file headers."""
    content_type = storage.served_type(content_type)
    filename = f"{name}{SUFFIXES.get(content_type, '.bin')}"
    attachment = content_type == storage.OPAQUE
    if data is None:
        try:
            url = storage.url_for_ref(ref, filename if attachment else None, content_type)
            resp = redirect(url) if url else Response(storage.read(ref), mimetype=content_type)
        except storage.StorageError:
            abort(404)
    else:
        resp = Response(data, mimetype=content_type)
    resp.headers["Cache-Control"] = cache
    resp.headers.update(storage.file_headers(filename, attachment))
    return resp


# --- prompt gallery ---


@bp.route("/prompts")
def prompts():
    filters = gallery.prompt_filters(request.args)
    page = gallery.gallery(filters, max(request.args.get("page", 1, type=int), 1))
    listed = {fn.id: fn for fn in cms.listed_functions()}
    return render_template("site/prompts.html", prompts=page, filters=filters, functions=listed.values(),
                           filter_args={k: v for k, v in filters.items() if v},
                           usable=listed, categories=gallery.categories(), category_label=gallery.category_label,
                           form=CancelForm())


@bp.route("/prompts/<int:prompt_id>/use", methods=["POST"])
def use_prompt(prompt_id):
    """Count the use, then open the function with the prompt: a 303 to a GET, so reloading never counts again."""
    if not CancelForm().validate_on_submit():
        abort(400)
    prompt = gallery.use_prompt(prompt_id)
    fn = prompt and gallery.usable(prompt)
    if fn is None:
        flash("That prompt is not available right now.", "error")
        return redirect(url_for("site.prompts"), code=303)
    return redirect(url_for("site.function", key=fn.key, prompt=prompt.id), code=303)


@bp.route("/media/prompts/<int:prompt_id>")
def prompt_image(prompt_id):
    found = gallery.preview_image(prompt_id)
    if found is None:
        abort(404)
    return image_response(ref=found[0], content_type=found[1], name=f"prompt-{prompt_id}")


@bp.route("/media/examples/<int:example_id>/<any(before, after):which>")
def example_image(example_id, which):
    found = gallery.example_image(example_id, which)
    if found is None:
        abort(404)
    return image_response(ref=found[0], content_type=found[1], name=f"example-{example_id}-{which}")


# --- showcase ---


@bp.route("/showcase")
def showcase_index():
    function_key = (request.args.get("function") or "").strip()[:64] or None
    page = showcase.public_page(max(request.args.get("page", 1, type=int), 1), function_key)
    return render_template("site/showcase.html", items=page, function_key=function_key,
                           functions=cms.listed_functions())


@bp.route("/showcase/<int:item_id>")
def showcase_item(item_id):
    item = db.session.get(ShowcaseItem, item_id)
    if item is None:
        abort(404)
    if not showcase.is_public(item):
        # Moderated away: the address stays, with a placeholder instead of the image.
        return render_template("site/showcase_removed.html", item=item), 410
    return render_template("site/showcase_item.html", item=item, form=ReportForm(), reasons=REPORT_REASONS)


@bp.route("/media/showcase/<int:item_id>")
def showcase_image(item_id):
    found = showcase.public_image(item_id)
    if found is None:
        abort(404)
    # Short cache: a blur or a removal reaches visitors within a minute.
    return image_response(data=found[0], content_type=found[1], name=f"showcase-{item_id}", cache="public, max-age=60")


def _report_limit():
    return current_app.config["SHOWCASE_REPORT_LIMIT"]


@bp.route("/showcase/<int:item_id>/report", methods=["POST"])
@limiter.limit(_report_limit)
def showcase_report(item_id):
    form = ReportForm()
    item = db.session.get(ShowcaseItem, item_id)
    if item is None:
        abort(404)
    if not form.validate_on_submit():
        return render_template("site/showcase_item.html", item=item, form=form, reasons=REPORT_REASONS), 400
    try:
        counted = showcase.report(item.id, form.reason.data, form.details.data,
                                  current_user if current_user.is_authenticated else None, request.remote_addr)
    except showcase.ShowcaseError as exc:
        flash(str(exc), "error")
        return redirect(url_for("site.showcase_index"))
    flash("Thank you: our team will review this item." if counted
          else "You have already reported this item; our team will review it.", "info")
    return redirect(url_for("site.showcase_item", item_id=item.id))


@bp.route("/jobs/<int:job_id>/share", methods=["POST"])
@login_required
def job_share(job_id):
    form = ShareForm()
    job = db.session.get(Job, job_id)
    if job is None or job.user_id != current_user.id:
        abort(404)
    if not form.validate_on_submit():
        flash(next(iter(form.errors.values()))[0], "error")
        return redirect(url_for("site.job", job_id=job_id))
    try:
        item = showcase.share(current_user._get_current_object(), job_id, form.title.data)
    except showcase.ShowcaseError as exc:
        flash(str(exc), "error")
        return redirect(url_for("site.job", job_id=job_id))
    flash("Shared: your result is on the showcase.", "success")
    return redirect(url_for("site.showcase_item", item_id=item.id))


@bp.route("/showcase/<int:item_id>/withdraw", methods=["POST"])
@login_required
def showcase_withdraw(item_id):
    if not CancelForm().validate_on_submit():
        abort(400)
    item = db.session.get(ShowcaseItem, item_id)
    job_id = item.job_id if item else None
    try:
        showcase.withdraw(current_user._get_current_object(), item_id)
    except showcase.ShowcaseError:
        abort(404)
    flash("Your result is no longer on the showcase.", "info")
    return redirect(url_for("site.job", job_id=job_id))


# --- favicon: the owner's (Settings → Site), else the vendored one; never a 404 ---


@bp.route("/favicon.ico")
def favicon():
    custom = settings.get("site.favicon_url")
    if custom:
        return redirect(custom)
    return send_from_directory(current_app.static_folder, "favicon.ico", mimetype="image/x-icon", max_age=86400)
