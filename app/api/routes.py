"""The /api/v1 endpoints: parse and validate (schemas.py), call services, answer JSON. Each view declares
its request and answers with `documented`, which is what the OpenAPI document is built from."""
import base64
import hashlib
import binascii
import json

import sqlalchemy as sa
from flask import Response, g, jsonify, request
from pydantic import BaseModel, ValidationError

from app.api import bp, error, openapi
from app.api import schemas as s
from app.extensions import db
from app.models import Job, User
from app.services import app_webhooks, apps, fetch, jobs, parameters, storage
from app.services.uploads import SubmitError

documented = openapi.documented
FETCH_TIMEOUT_SECONDS = 15
COMMON = {401: s.Error, 429: s.Error}
# What services.uploads says about an image (format, size, pixels): the request's fault, a 400 naming `image`.
UPLOAD_PROBLEMS = frozenset({400, 413, 415, 422})


def _details(exc):
    return {".".join(str(p) for p in e["loc"]) or "body": e["msg"] for e in exc.errors()}


def _invalid(details):
    return error(400, "Invalid input", details=details)


def _parse(model, data):
    """(validated model, None) or (None, a 400 answer naming the fields)."""
    try:
        return model.model_validate(data), None
    except ValidationError as exc:
        return None, _invalid(_details(exc))


def _json_body(model):
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return None, _invalid({"body": "Send a JSON object (Content-Type: application/json)."})
    return _parse(model, data)


def _ok(model: type[BaseModel], body, status=200):
    return jsonify(model.model_validate(body).model_dump(mode="json")), status


def _external_id(value, field="X-User-ID"):
    value = (value or "").strip()
    if not value or len(value) > 255:
        return None, _invalid({field: "Required: your user's id in your app (at most 255 characters)."})
    return value, None


def _app_job(job_id):
    job = db.session.scalars(sa.select(Job).where(Job.id == job_id, Job.app_id == g.api_app.id)).first()
    return job


def _job_body(job):
    user = db.session.get(User, job.user_id)
    return {"job_id": job.id, "status": apps.api_status(job.status), "function": job.function_key,
            "user_id": user.external_id if user else None, "created_at": job.created_at,
            "started_at": job.started_at, "completed_at": job.finished_at, "outputs": app_webhooks.outputs(job),
            "tokens_charged": 0 if job.refunded else job.credits_charged,
            "provider_used": job.provider_key if job.status == "done" else None,
            "error": job.customer_message if job.status in ("failed", "cancelled") else None}


# --- functions ---


@bp.get("/functions")
@documented("List the functions this app may use", responses={200: s.FunctionList, **COMMON})
def functions():
    rows = [{"key": fn.key, "name": fn.name, "description": fn.description or "", "price": fn.price_per_use,
             "formats": list(fn.allowed_formats or []), "max_file_size": fn.max_file_size,
             "daily_limit": fn.daily_limit, "parameters": list(fn.parameters or [])}
            for fn in apps.functions_for(g.api_app)]
    return _ok(s.FunctionList, {"functions": rows})


# --- generate ---


def _generate_input():
    """The request as (validated body, has a file, the file's bytes or None) or an error answer."""
    if request.mimetype == "multipart/form-data":
        fields = {k: v for k, v in request.form.items()}
        if "params" in fields:
            try:
                fields["params"] = json.loads(fields["params"])
            except ValueError:
                return None, _invalid({"params": "Send params as a JSON object."})
        upload = request.files.get("image")
        body, problem = _parse(s.GenerateRequest, fields)
        return (body, upload.read() if upload else None), problem
    body, problem = _json_body(s.GenerateRequest)
    return (body, None), problem


def _decode_base64(text):
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SubmitError("image_base64 is not valid base64.", status=400) from None


def _fetch_image(url, fn):
    try:
        data, _type = fetch.fetch(url, allow_hosts=app_webhooks.allow_hosts(), max_bytes=fn.max_file_size,
                                  timeout=FETCH_TIMEOUT_SECONDS)
    except fetch.FetchRefused as exc:
        raise SubmitError(f"This image URL is not fetched: {exc}", status=400) from None
    except fetch.FetchError as exc:
        raise SubmitError(f"The image URL could not be downloaded: {exc}", status=400) from None
    return data


@bp.post("/generate")
@documented("Submit a job for one of your users (X-User-ID)", request=s.GenerateRequest, user_header=True,
            responses={202: s.GenerateAccepted, 400: s.Error, 402: s.Error, 404: s.Error, 409: s.Error, **COMMON})
def generate():
    external_id, problem = _external_id(request.headers.get("X-User-ID"))
    if problem:
        return problem
    parsed, problem = _generate_input()
    if problem:
        return problem
    body, upload = parsed
    if problem := s.image_problem(body, upload is not None):
        return _invalid(problem)
    fn = apps.function_for(g.api_app, body.function)
    if fn is None:
        return error(404, f"Function not found: {body.function}")
    user = apps.app_user(g.api_app, external_id)

    def image():
        if upload is not None:
            return upload
        if body.image_base64:
            return _decode_base64(body.image_base64)
        return _fetch_image(body.image_url, fn)

    request_body = body.model_dump(mode="json", exclude={"idempotency_key"})
    if upload is not None:
        request_body["image_sha256"] = hashlib.sha256(upload).hexdigest()
    try:
        status, answer = apps.submit_job(g.api_app, user, fn, request_body, image, key=body.idempotency_key)
    except apps.NotEnoughCredits as exc:
        return error(402, "Insufficient tokens", balance=exc.balance, required=exc.required)
    except apps.IdempotencyConflict as exc:
        return error(409, str(exc))
    except apps.TooManyInFlight as exc:
        resp, code = error(429, f"Too many jobs in flight: {exc}.", retry_after=5)
        resp.headers["Retry-After"] = "5"
        return resp, code
    except parameters.ParameterError as exc:
        return _invalid({f"params.{key}": message for key, message in exc.fields.items()})
    except SubmitError as exc:
        if exc.status == 402:
            balance = db.session.scalar(sa.select(User.balance).where(User.id == user.id))
            return error(402, "Insufficient tokens", balance=balance,
                         required=getattr(exc, "price", fn.price_per_use))
        if exc.status in UPLOAD_PROBLEMS:
            return _invalid({"image": str(exc)})
        return error(exc.status, str(exc))
    return _ok(s.GenerateAccepted, answer, status)


# --- jobs ---


@bp.get("/jobs/<int:job_id>")
@documented("One job of this app", responses={200: s.JobOut, 404: s.Error, **COMMON})
def job(job_id):
    found = _app_job(job_id)
    if found is None:
        return error(404, "Job not found")
    return _ok(s.JobOut, _job_body(found))


@bp.get("/jobs")
@documented("This app's jobs, newest first (cursor pagination; X-User-ID narrows to one user)",
            query=s.JobQuery, responses={200: s.JobList, 400: s.Error, **COMMON})
def job_list():
    query, problem = _parse(s.JobQuery, request.args.to_dict())
    if problem:
        return problem
    stmt = sa.select(Job).where(Job.app_id == g.api_app.id)
    if request.headers.get("X-User-ID"):
        user = apps.find_user(g.api_app, request.headers["X-User-ID"])
        stmt = stmt.where(Job.user_id == (user.id if user else None))
    if query.status:
        stmt = stmt.where(Job.status.in_(apps.statuses_for(query.status)))
    if query.cursor:
        stmt = stmt.where(Job.id < query.cursor)
    rows = db.session.scalars(stmt.order_by(Job.id.desc()).limit(query.limit + 1)).all()
    page = rows[:query.limit]
    return _ok(s.JobList, {"jobs": [_job_body(j) for j in page],
                           "next_cursor": page[-1].id if len(rows) > query.limit else None})


@bp.post("/jobs/<int:job_id>/cancel")
@documented("Cancel a job (a queued one is refunded at once)",
            responses={200: s.CancelAnswer, 404: s.Error, 409: s.Error, **COMMON})
def job_cancel(job_id):
    found = _app_job(job_id)
    if found is None:
        return error(404, "Job not found")
    if found.status not in jobs.ACTIVE:
        return error(409, "This job has already finished.")
    message = jobs.cancel(job_id)
    db.session.expire_all()
    return _ok(s.CancelAnswer, {"job_id": job_id, "status": apps.api_status(_app_job(job_id).status),
                                "message": message})


@bp.get("/jobs/<int:job_id>/output")
@documented("The result image of a succeeded job", responses={200: None, 404: s.Error, **COMMON}, binary=True)
def job_output(job_id):
    found = _app_job(job_id)
    if found is None or found.status != "done" or not found.output_ref:
        return error(404, "No output for this job")
    content_type = storage.served_type(found.output_content_type)
    filename = f"neurapix-{found.function_key}-{found.id}{jobs.SUFFIXES.get(content_type, '.bin')}"
    try:
        data = storage.read(found.output_ref)
    except storage.StorageError:
        return error(404, "No output for this job")
    resp = Response(data, mimetype=content_type)
    resp.headers.update(storage.file_headers(filename, attachment=True))
    return resp


# --- users and their credits ---


@bp.get("/users/<external_id>")
@documented("One of this app's users", responses={200: s.UserOut, 404: s.Error, **COMMON})
def user(external_id):
    found = apps.find_user(g.api_app, external_id)
    if found is None:
        return error(404, "User not found")
    return _ok(s.UserOut, apps.user_summary(found))


@bp.post("/users/<external_id>/tokens")
@documented("Grant tokens (credits) to a user; made on first use", request=s.GrantRequest,
            responses={200: s.GrantAnswer, 400: s.Error, 409: s.Error, **COMMON})
def grant(external_id):
    external_id, problem = _external_id(external_id, "external_id")
    if problem:
        return problem
    body, problem = _json_body(s.GrantRequest)
    if problem:
        return problem
    try:
        status, answer = apps.grant(g.api_app, external_id, body.amount, body.reason, key=body.idempotency_key)
    except apps.IdempotencyConflict as exc:
        return error(409, str(exc))
    return _ok(s.GrantAnswer, answer, status)


@bp.post("/users/tokens/batch")
@documented("Grant tokens to several users: all or none", request=s.BatchRequest,
            responses={200: s.BatchAnswer, 400: s.Error, 409: s.Error, **COMMON})
def grant_batch():
    body, problem = _json_body(s.BatchRequest)
    if problem:
        return problem
    try:
        status, answer = apps.grant_batch(g.api_app, [item.model_dump() for item in body.grants],
                                          key=body.idempotency_key)
    except apps.IdempotencyConflict as exc:
        return error(409, str(exc))
    except ValueError as exc:
        return error(400, "Invalid input", details={"grants": str(exc)})
    return _ok(s.BatchAnswer, answer, status)
