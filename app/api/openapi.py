"""The OpenAPI 3.1 document of /api/v1, built by apispec from the routes themselves: each view declares its
request and answers (pydantic models, the same ones that validate requests), and every rule of the
blueprint becomes a path. Nothing here is written by hand, so the document cannot drift from the code."""
import re

from apispec import APISpec
from flask import current_app, jsonify, render_template, url_for

from app.api import bp

SCHEMA_REF = "#/components/schemas/{model}"
_CONVERTER = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


def documented(summary, *, request=None, query=None, responses, user_header=False, binary=False):
    """Record what a view takes and answers, for the document."""
    def mark(view):
        view.openapi = {"summary": summary, "request": request, "query": query, "responses": responses,
                        "user_header": user_header, "binary": binary}
        return view
    return mark


def _schema(spec, model):
    """Register the model (and the models it nests) as components; return a $ref to it."""
    schema = model.model_json_schema(ref_template=SCHEMA_REF)
    for name, nested in schema.pop("$defs", {}).items():
        if name not in spec.components.schemas:
            spec.components.schema(name, nested)
    if model.__name__ not in spec.components.schemas:
        spec.components.schema(model.__name__, schema)
    return {"$ref": SCHEMA_REF.format(model=model.__name__)}


def _operation(spec, rule, doc):
    parameters = [{"name": name, "in": "path", "required": True,
                   "schema": {"type": "integer" if f"<int:{name}>" in rule.rule else "string"}}
                  for name in rule.arguments]
    if doc["user_header"]:
        parameters.append({"name": "X-User-ID", "in": "header", "required": True, "schema": {"type": "string"},
                           "description": "Your user's id in your app; the user is made on first use."})
    if doc["query"] is not None:
        query = doc["query"].model_json_schema()
        for name, field in query["properties"].items():
            parameters.append({"name": name, "in": "query", "required": name in query.get("required", []),
                               "schema": field})
    operation = {"summary": doc["summary"], "parameters": parameters, "responses": {}}
    if doc["request"] is not None:
        ref = _schema(spec, doc["request"])
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref}}}
        if doc["request"].__name__ == "GenerateRequest":
            operation["requestBody"]["content"]["multipart/form-data"] = {"schema": {
                "allOf": [ref], "properties": {"image": {"type": "string", "contentMediaType": "image/*"}}}}
    for status, model in doc["responses"].items():
        if model is None:
            content = {"image/*": {"schema": {"type": "string", "contentMediaType": "image/*"}}}
        else:
            content = {"application/json": {"schema": _schema(spec, model)}}
        operation["responses"][str(status)] = {"description": _DESCRIPTIONS.get(status, "Success"),
                                               "content": content}
    return operation


_DESCRIPTIONS = {200: "Success", 202: "Accepted: the job is queued", 400: "Invalid input (details name the fields)",
                 401: "Invalid API key", 402: "Insufficient tokens (balance and required)", 404: "Not found",
                 409: "Idempotency key reused with another request, or the job already finished",
                 429: "Rate limit or jobs-in-flight limit exceeded (retry_after, Retry-After)"}


def build(app):
    from app.api.schemas import WebhookPayload

    spec = APISpec(title="Neurapix API", version="1", openapi_version="3.1.0",
                   info={"description": "Client apps submit jobs for their users and grant them credits. "
                                        "Authenticate with the X-API-Key header."})
    spec.components.security_scheme("ApiKey", {"type": "apiKey", "in": "header", "name": "X-API-Key"})
    paths = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.endpoint.startswith("api."):
            continue
        view = app.view_functions[rule.endpoint]
        doc = getattr(view, "openapi", None)
        if doc is None:
            continue
        path = _CONVERTER.sub(r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            operation = _operation(spec, rule, doc)
            operation["security"] = [{"ApiKey": []}]
            operation["operationId"] = rule.endpoint.split(".", 1)[1]
            paths.setdefault(path, {})[method.lower()] = operation
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    _schema(spec, WebhookPayload)
    return spec.to_dict()


@bp.get("/openapi.json")
def openapi():
    return jsonify(build(current_app))


@bp.get("/reference")
def reference():
    return render_template("api/reference.html", spec_url=url_for("api.openapi"))
