"""Customer page routes: thin views over services.catalog, services.jobs and services.payments."""
import sqlalchemy as sa
from flask import Response, abort, flash, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required

from app.extensions import db
from app.models import CreditLedger, Job, Plan
from app.services import (catalog, cms, coupons, gallery, history, jobs, parameters, payments, permissions,
                          referrals, storage)
from app.services.urls import absolute_url
from app.site import bp
from app.site.forms import CancelForm, DeleteResultForm, RedeemForm, UploadForm

PAGE_SIZE = 20


@bp.route("/")
def index():
    code = referrals.clean_code(request.args.get("ref"))
    if code and not current_user.is_authenticated:
        session[referrals.SESSION_KEY] = code  # kept through sign-up
    functions = cms.listed_functions()
    examples = gallery.landing_examples()
    return render_template("site/index.html", functions=functions, examples=examples,
                           card_images=gallery.card_images(examples), listed={fn.id: fn for fn in functions},
                           prompts=gallery.featured_prompts(), faq=("faq", "FAQ") in gallery.footer_links())


def _function_page(fn, form, values, errors=None, status=200, **extra):
    definition = fn.parameters or []
    values = {**parameters.defaults(definition), **values}
    try:
        price_now = parameters.price(fn.price_per_use, definition, values)
    except (TypeError, ValueError):  # values that failed their check name no price rule
        price_now = fn.price_per_use
    return render_template("site/function.html", fn=fn, form=form, values=values, param_errors=errors or {},
                           price_now=price_now, **extra), status


@bp.route("/f/<key>", methods=["GET", "POST"])
def function(key):
    fn = catalog.visible_function(key)
    if fn is None:
        abort(404)
    form = UploadForm()
    definition = fn.parameters or []
    if request.method == "POST":
        if not current_user.is_authenticated:
            return redirect(url_for("auth.login", next=request.path))
        values, files = parameters.from_form(definition, request.form, request.files)
        if form.validate_on_submit():
            upload = form.image.data
            # Read one byte past the limit: enough to tell "too big" without holding a huge body.
            data = upload.stream.read(fn.max_file_size + 1)
            try:
                job = jobs.submit(current_user, fn.key, data, upload.filename or "upload", fn=fn, params=values,
                                  files=files)
            except parameters.ParameterError as exc:
                return _function_page(fn, form, values, exc.fields, exc.status)
            except jobs.SubmitError as exc:
                form.image.errors.append(str(exc))
                # Short of credits: link straight to the cheapest plan that covers this job.
                top_up = (payments.plan_for_credits(current_user, getattr(exc, "price", fn.price_per_use))
                          if exc.status == 402 else None)
                return _function_page(fn, form, values, status=exc.status, short=exc.status == 402, top_up=top_up)
            return redirect(url_for("site.job", job_id=job.id))
        return _function_page(fn, form, values, status=400)
    user = current_user if current_user.is_authenticated else None
    values = None
    if user is not None and request.args.get("from", type=int):
        values = history.rerun_inputs(user, fn, request.args.get("from", type=int))
    if values is None:
        values = history.last_inputs(user, fn)
    # "Use this" from the prompt gallery fills the function's own prompt field, when it has one.
    keys = {param["key"] for param in definition}
    prefill = gallery.prefill_for(fn, request.args.get("prompt"))
    values = {**values, **{key: value for key, value in prefill.items() if key in keys}}
    return _function_page(fn, form, values)


def _own_job(job_id):
    """The job if the signed-in user may see it (its owner or staff); 404 otherwise, never 403."""
    job = db.session.get(Job, job_id)
    if job is None or job.deleted_at is not None or (job.user_id != current_user.id and not current_user.is_staff):
        abort(404)
    return job


def job_payload(job):
    """The job as its page polls it: plain words only (the provider's details stay in the admin), and the
    viewer's balance, so the header follows a refund without a reload."""
    return {
        "id": job.id, "status": job.status, "function": job.function_key, "error": jobs.customer_notice(job),
        "created_at": job.created_at.isoformat(), "finished_at": job.finished_at and job.finished_at.isoformat(),
        "started_at": job.started_at and job.started_at.isoformat(), "queue_position": history.queue_position(job),
        "input_url": url_for("site.job_file", job_id=job.id, which="input"),
        "output_url": url_for("site.job_file", job_id=job.id, which="output") if job.status == "done" else None,
        "credits_charged": job.credits_charged, "refunded": job.refunded, "balance": current_user.balance,
    }


@bp.route("/jobs/<int:job_id>")
@login_required
def job(job_id):
    job = _own_job(job_id)
    return render_template("site/job.html", job=job, notice=jobs.customer_notice(job), form=CancelForm(),
                           queue_position=history.queue_position(job), settings_shown=_settings_shown(job))


def _settings_shown(job):
    """(label, value) of the job's parameters for its page, in the function's order (images left out)."""
    definition = {p["key"]: p for p in (job.function.parameters if job.function else [])}
    shown = []
    for key, value in (job.params or {}).items():
        param = definition.get(key, {"label": key, "type": "text"})
        if param["type"] == "image":
            continue
        if param["type"] in ("select", "grid_select"):
            value = dict((parameters.rule_key(v), label) for v, label in parameters.options(param)).get(
                parameters.rule_key(value), value)
        elif param["type"] == "toggle":
            value = "on" if value else "off"
        shown.append((param.get("label", key), value))
    return shown


@bp.route("/jobs/<int:job_id>/thumbnail")
@login_required
def job_thumbnail(job_id):
    ref = history.thumbnail(_own_job(job_id))
    if ref is None:
        abort(404)
    try:
        resp = Response(storage.read(ref), mimetype="image/webp")
    except storage.StorageError:
        abort(404)
    resp.headers["Cache-Control"] = "private, max-age=86400"
    resp.headers.update(storage.file_headers(f"neurapix-{job_id}-thumbnail.webp", False))
    return resp


@bp.route("/account/jobs")
@login_required
def account_jobs():
    function_key = request.args.get("function") or None
    status = request.args.get("status") or None
    results = history.gallery(current_user.id, function_key, status, request.args.get("page", 1, type=int))
    return render_template("site/account_jobs.html", results=results, function_key=function_key, status=status,
                           functions=history.used_functions(current_user.id), statuses=history.JOB_STATUSES)


@bp.route("/account/jobs/<int:job_id>/delete", methods=["GET", "POST"])
@login_required
def delete_result(job_id):
    """A confirmation page, then the deletion (services.history audits and commits it)."""
    job = _own_job(job_id)
    if job.user_id != current_user.id:
        abort(404)
    form = DeleteResultForm()
    if form.validate_on_submit():
        try:
            history.delete_result(current_user._get_current_object(), job_id)
        except history.HistoryError as exc:
            flash(str(exc), "error")
            return redirect(url_for("site.job", job_id=job_id))
        flash(f"Job #{job_id} and its files were deleted.", "success")
        return redirect(url_for("site.account_jobs"))
    return render_template("site/delete_result.html", job=job, form=form)


@bp.route("/jobs/<int:job_id>.json")
@login_required
def job_json(job_id):
    return jsonify(job_payload(_own_job(job_id)))


@bp.route("/jobs/<int:job_id>/cancel", methods=["POST"])
@login_required
def job_cancel(job_id):
    if not permissions.may_cancel_job(current_user, _own_job(job_id)):
        abort(403)
    flash(jobs.cancel(job_id, actor=current_user), "info")
    return redirect(url_for("site.job", job_id=job_id))


@bp.route("/jobs/<int:job_id>/<any(input, output):which>")
@login_required
def job_file(job_id, which):
    job = _own_job(job_id)
    ref = job.input_ref if which == "input" else job.output_ref
    if not ref:
        abort(404)
    content_type = storage.served_type(job.input_meta.get("content_type") if which == "input"
                                       else job.output_content_type)
    attachment = bool(request.args.get("download")) or content_type == storage.OPAQUE
    filename = (f"neurapix-{job.function_key}-{job.id}{'-input' if which == 'input' else ''}"
                f"{jobs.SUFFIXES.get(content_type, '.bin')}")
    try:
        # Files in S3 go to the browser straight from the CDN or a presigned URL; local files are served here.
        url = storage.url_for_ref(ref, filename if attachment else None, content_type)
        if url:
            resp = redirect(url)
        else:
            resp = Response(storage.read(ref), mimetype=content_type)
            resp.headers["Cache-Control"] = "private, max-age=3600"
    except storage.StorageError:
        abort(404)
    resp.headers.update(storage.file_headers(filename, attachment))
    return resp


@bp.route("/pricing")
def pricing():
    plans = catalog.plans_for(current_user if current_user.is_authenticated else None)
    offers = {plan.id: payments.checkout_options(plan) for plan in plans}
    return render_template("site/pricing.html", plans=plans, offers=offers, form=CancelForm(),
                           payments_ready=any(offers.values()), highlight=request.args.get("plan", type=int))


@bp.route("/checkout/<int:plan_id>", methods=["POST"])
@login_required
def checkout(plan_id):
    """Start paying for a plan: services.payments writes the order, then sends the customer to the gateway."""
    try:
        url = payments.start_checkout(current_user, db.session.get(Plan, plan_id),
                                      request.form.get("gateway", "stripe"), request.form.get("coupon"))
    except payments.NotForSale:
        abort(404)
    except payments.CheckoutError as exc:
        flash(str(exc), "error")
        return redirect(url_for("site.pricing"))
    return redirect(url, code=303)


RETURN_MESSAGES = {
    "applied": ("Thank you! Your payment is complete and the credits are in your balance.", "info"),
    "duplicate": ("Thank you! Your payment is being confirmed; credits appear here within a minute.", "info"),
    "pending": ("Thank you! PayPal is still confirming your payment; credits appear here once it has.", "info"),
    "review": ("We received your payment but need to check it before adding credits. Our support team will "
               "be in touch.", "error"),
}


@bp.route("/checkout/paypal/<int:order_id>")
@login_required
def paypal_return(order_id):
    """PayPal sends the buyer back here (?token=<PayPal order id>) once they approved: capture it now."""
    try:
        outcome = payments.finish_paypal_return(current_user, order_id, request.args.get("token", ""))
    except payments.NotForSale:
        abort(404)
    except payments.CheckoutError as exc:
        flash(str(exc), "error")
        return redirect(url_for("site.pricing"))
    flash(*RETURN_MESSAGES.get(outcome, RETURN_MESSAGES["duplicate"]))
    return redirect(url_for("site.account"))


@bp.route("/account/billing", methods=["POST"])
@login_required
def billing_portal():
    """Stripe's customer portal: cards, invoices, cancelling a subscription."""
    try:
        url = payments.billing_portal_url(current_user, absolute_url("site.account"))
    except payments.CheckoutError as exc:
        flash(str(exc), "error")
        return redirect(url_for("site.account"))
    return redirect(url, code=303)


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
    me = current_user._get_current_object()
    referral_link = absolute_url("site.index", ref=me.referral_code) if me.referral_code else None
    return render_template("site/account.html", ledger=ledger, jobs=recent, form=CancelForm(),
                           redeem_form=RedeemForm(), referral_link=referral_link)


@bp.route("/account/referral-link", methods=["POST"])
@login_required
def referral_link():
    """Accounts made before referrals existed get their code on request (reading /account never writes)."""
    if CancelForm().validate_on_submit() and current_user.role == "customer":
        referrals.issue_code(current_user._get_current_object())
    return redirect(url_for("site.account") + "#referral")


@bp.route("/account/redeem", methods=["POST"])
@login_required
def redeem():
    """A credits code: the credits once per customer, within the code's limits."""
    form = RedeemForm()
    if form.validate_on_submit():
        try:
            added = coupons.redeem(current_user._get_current_object(), form.code.data)
        except coupons.CouponError as exc:
            flash(str(exc), "error")
        else:
            flash(f"Code accepted: {added} credits were added to your balance.", "success")
    else:
        flash("Enter a code.", "error")
    return redirect(url_for("site.account"))
