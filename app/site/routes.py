"""Customer page routes: thin views over services.catalog and services.jobs."""
import sqlalchemy as sa
from flask import Response, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.extensions import db
from app.models import CreditLedger, Job
from app.services import catalog, jobs, storage
from app.site import bp
from app.site.forms import CancelForm, UploadForm

PAGE_SIZE = 20


@bp.route("/")
def index():
    return render_template("site/index.html", functions=catalog.visible_functions())


@bp.route("/f/<key>", methods=["GET", "POST"])
def function(key):
    fn = catalog.visible_function(key)
    if fn is None:
        abort(404)
    form = UploadForm()
    if request.method == "POST":
        if not current_user.is_authenticated:
            return redirect(url_for("auth.login", next=request.path))
        if form.validate_on_submit():
            upload = form.image.data
            # Read one byte past the limit: enough to tell "too big" without holding a huge body.
            data = upload.stream.read(fn.max_file_size + 1)
            try:
                job = jobs.submit(current_user, fn.key, data, upload.filename or "upload")
            except jobs.SubmitError as exc:
                form.image.errors.append(str(exc))
                return render_template("site/function.html", fn=fn, form=form), exc.status
            return redirect(url_for("site.job", job_id=job.id))
        return render_template("site/function.html", fn=fn, form=form), 400
    return render_template("site/function.html", fn=fn, form=form)


def _own_job(job_id):
    """The job if the signed-in user may see it (its owner or staff); 404 otherwise, never 403."""
    job = db.session.get(Job, job_id)
    if job is None or (job.user_id != current_user.id and not current_user.is_staff):
        abort(404)
    return job


def job_payload(job):
    return {
        "id": job.id, "status": job.status, "function": job.function_key, "error": job.error,
        "created_at": job.created_at.isoformat(), "finished_at": job.finished_at and job.finished_at.isoformat(),
        "input_url": url_for("site.job_file", job_id=job.id, which="input"),
        "output_url": url_for("site.job_file", job_id=job.id, which="output") if job.status == "done" else None,
        "credits_charged": job.credits_charged, "refunded": job.refunded,
    }


@bp.route("/jobs/<int:job_id>")
@login_required
def job(job_id):
    return render_template("site/job.html", job=_own_job(job_id), form=CancelForm())


@bp.route("/jobs/<int:job_id>.json")
@login_required
def job_json(job_id):
    return jsonify(job_payload(_own_job(job_id)))


@bp.route("/jobs/<int:job_id>/cancel", methods=["POST"])
@login_required
def job_cancel(job_id):
    _own_job(job_id)
    flash(jobs.cancel(job_id, actor=current_user), "info")
    return redirect(url_for("site.job", job_id=job_id))


@bp.route("/jobs/<int:job_id>/<any(input, output):which>")
@login_required
def job_file(job_id, which):
    job = _own_job(job_id)
    ref = job.input_ref if which == "input" else job.output_ref
    if not ref:
        abort(404)
    try:
        data = storage.read(ref)
    except storage.StorageError:
        abort(404)
    content_type = job.input_meta.get("content_type") if which == "input" else job.output_content_type
    resp = Response(data, mimetype=content_type or "application/octet-stream")
    if request.args.get("download"):
        suffix = jobs.SUFFIXES.get(content_type, "")
        resp.headers["Content-Disposition"] = f'attachment; filename="neurapix-{job.function_key}-{job.id}{suffix}"'
    resp.headers["Cache-Control"] = "private, max-age=3600"
    return resp


@bp.route("/pricing")
def pricing():
    return render_template("site/pricing.html", plans=catalog.public_plans())


@bp.route("/account")
@login_required
def account():
    page = max(request.args.get("page", 1, type=int), 1)
    jobs_page = max(request.args.get("jobs_page", 1, type=int), 1)
    ledger = db.paginate(
        sa.select(CreditLedger).where(CreditLedger.user_id == current_user.id).order_by(CreditLedger.id.desc()),
        page=page, per_page=PAGE_SIZE, error_out=False,
    )
    recent = db.paginate(
        sa.select(Job).where(Job.user_id == current_user.id).order_by(Job.id.desc()),
        page=jobs_page, per_page=PAGE_SIZE, error_out=False,
    )
    return render_template("site/account.html", ledger=ledger, jobs=recent)
