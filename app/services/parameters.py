"""Function parameters: the definition an owner writes (AIFunction.parameters), the values a customer submits
checked against it, the price they lead to, and the `params` a provider receives.

One validator serves the admin form, its live preview and imports; one value checker serves the site and any
other entry point of services.jobs.submit. The browser's checks are a convenience: every value is checked here.
"""
import base64
import math
import re
import secrets

from app.services import storage
from app.services.uploads import SubmitError

TYPES = ("text", "prompt", "number", "slider", "select", "grid_select", "toggle", "seed", "image")
COMMON = {"key", "type", "label", "help", "default", "required", "price_multiplier"}
EXTRA = {"text": {"max_length", "placeholder"}, "prompt": {"max_length", "placeholder"},
         "number": {"min", "max", "step"}, "slider": {"min", "max", "step"},
         "select": {"options"}, "grid_select": {"options"}, "toggle": set(), "seed": set(), "image": set()}
KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")
MAX_TEXT = 10000
DEFAULT_MAX_LENGTH = {"text": 200, "prompt": 2000}
SEED_MAX = 2**32 - 1
MAX_PARAMETERS = 40
TRUE_WORDS, FALSE_WORDS = {"on", "true", "1", "yes", "y"}, {"", "off", "false", "0", "no", "n"}


def field_name(key):
    """The form field of a parameter on /f/<key>: prefixed, so no key can collide with csrf_token or image."""
    return f"param-{key}"


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def rule_key(value):
    """A value as a price rule names it: true/false, 4 (not 4.0), or the text itself (the JS does the same)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_number(value) and float(value).is_integer():
        return str(int(value))
    return str(value)


def options(param):
    """[(value, label)] of a select or grid select; options may be plain values or {"value", "label"}."""
    found = []
    for option in param.get("options") or []:
        if isinstance(option, dict):
            found.append((option.get("value"), str(option.get("label", option.get("value")))))
        else:
            found.append((option, str(option)))
    return found


# --- the definition ---


def _number_errors(param, say):
    low, high, step = param.get("min"), param.get("max"), param.get("step")
    for name, value in (("min", low), ("max", high), ("step", step)):
        if value is not None and not _is_number(value):
            say(name, f"{name} must be a number.")
    if param["type"] == "slider" and (low is None or high is None):
        say("min", "a slider needs both min and max.")
    if _is_number(low) and _is_number(high) and low > high:
        say("min", f"min ({low}) is more than max ({high}).")
    if _is_number(step) and step <= 0:
        say("step", "step must be more than 0.")


def _option_errors(param, say):
    raw = param.get("options")
    if not isinstance(raw, list) or not raw:
        say("options", "options must be a non-empty list of values or {\"value\", \"label\"} objects.")
        return
    seen = set()
    for i, option in enumerate(raw, 1):
        value = option.get("value") if isinstance(option, dict) else option
        if isinstance(option, dict) and (set(option) - {"value", "label"} or "value" not in option):
            say("options", f"option {i} must have a value (and may have a label), nothing else.")
        elif not (isinstance(value, str) and value) and not _is_number(value):
            say("options", f"option {i}: the value must be a non-empty text or a number.")
        elif rule_key(value) in seen:
            say("options", f"option {i}: the value {value!r} is listed twice.")
        seen.add(rule_key(value))


def _default_error(param, default):
    """Why `default` does not suit the parameter, or None."""
    kind = param["type"]
    if kind == "image":
        return "an image parameter cannot have a default."
    try:
        check_value(param, default)
    except ValueError as exc:
        return str(exc)
    return None


def definition_errors(definition):
    """Every problem of a parameters definition as (where, message), where is "parameters" or "#2 scale.min";
    [] when it is valid."""
    if definition is None:
        return []
    if not isinstance(definition, list):
        return [("parameters", "The parameters must be a JSON list of objects, e.g. [{\"key\": \"scale\", …}].")]
    if len(definition) > MAX_PARAMETERS:
        return [("parameters", f"At most {MAX_PARAMETERS} parameters.")]
    errors, keys = [], set()
    for index, param in enumerate(definition, 1):
        if not isinstance(param, dict):
            errors.append((f"#{index}", "each parameter must be a JSON object."))
            continue
        before = len(errors)
        key = param.get("key")
        where = f"#{index} {key}" if isinstance(key, str) and key else f"#{index}"

        def say(field, message, where=where):
            errors.append((f"{where}.{field}", message))

        if not isinstance(key, str) or not KEY.fullmatch(key):
            say("key", "key must be lower case letters, digits and _, starting with a letter (at most 40).")
        elif key in keys:
            say("key", f"the key {key!r} is used twice.")
        keys.add(key)
        kind = param.get("type")
        if kind not in TYPES:
            say("type", f"unknown type {kind!r}; use one of: {', '.join(TYPES)}.")
            continue
        if not isinstance(param.get("label"), str) or not param["label"].strip():
            say("label", "label is required (the text customers read).")
        elif len(param["label"]) > 80:
            say("label", "label must be at most 80 characters.")
        if "help" in param and not isinstance(param["help"], str):
            say("help", "help must be text.")
        if "required" in param and not isinstance(param["required"], bool):
            say("required", "required must be true or false.")
        for name in sorted(set(param) - COMMON - EXTRA[kind]):
            say(name, f"{name!r} is not a field of a {kind} parameter.")
        if kind in ("text", "prompt") and "max_length" in param:
            length = param["max_length"]
            if not isinstance(length, int) or isinstance(length, bool) or not 1 <= length <= MAX_TEXT:
                say("max_length", f"max_length must be a whole number from 1 to {MAX_TEXT}.")
        if kind in ("number", "slider"):
            _number_errors(param, say)
        if kind in ("select", "grid_select"):
            _option_errors(param, say)
        if param.get("default") is not None and len(errors) == before:
            if message := _default_error(param, param["default"]):
                say("default", f"bad default: {message}")
        if "price_multiplier" in param:
            _price_errors(param, say)
    return errors


def _price_errors(param, say):
    rule = param["price_multiplier"]
    if param["type"] in ("text", "prompt", "seed", "image") or not isinstance(rule, dict) or not rule:
        say("price_multiplier", "price_multiplier maps values to a multiplier, e.g. {\"4\": 2}, on number, slider, "
                                "select, grid_select or toggle parameters.")
        return
    for value, times in rule.items():
        if not _is_number(times) or times <= 0:
            say("price_multiplier", f"the multiplier for {value!r} must be a number more than 0.")
        elif param["type"] in ("select", "grid_select") and value not in {rule_key(v) for v, _l in options(param)}:
            say("price_multiplier", f"{value!r} is not one of the options.")
        elif param["type"] == "toggle" and value not in ("true", "false"):
            say("price_multiplier", "a toggle's price rule names \"true\" or \"false\".")


def describe(errors):
    """The errors as lines for a person: "#2 scale.min: min (5) is more than max (1)."."""
    return [f"{where}: {message}" for where, message in errors]


# --- submitted values ---


def _as_number(param, raw):
    if isinstance(raw, str):
        try:
            raw = float(raw.strip()) if raw.strip() else None
        except ValueError:
            raise ValueError("enter a number.") from None
    if not _is_number(raw):
        raise ValueError("enter a number.")
    return int(raw) if float(raw).is_integer() else raw


def check_value(param, raw):
    """One value (a form string or a JSON value) → the value stored on the job; ValueError with words for the
    customer when it does not fit the definition."""
    kind = param["type"]
    if kind in ("text", "prompt"):
        if not isinstance(raw, str):
            raise ValueError("enter text.")
        limit = param.get("max_length") or DEFAULT_MAX_LENGTH[kind]
        if len(raw) > limit:
            raise ValueError(f"at most {limit} characters (this is {len(raw)}).")
        return raw
    if kind in ("number", "slider"):
        value = _as_number(param, raw)
        low, high, step = param.get("min"), param.get("max"), param.get("step")
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(f"choose a value from {low if low is not None else '…'} to "
                             f"{high if high is not None else '…'}.")
        if step:
            steps = (value - (low or 0)) / step
            if abs(steps - round(steps)) > 1e-9:
                raise ValueError(f"use steps of {step}.")
        return value
    if kind in ("select", "grid_select"):
        for value, _label in options(param):
            if rule_key(value) == rule_key(raw) and (isinstance(raw, str) or type(raw) is type(value)
                                                     or (_is_number(raw) and _is_number(value))):
                return value
        raise ValueError("choose one of the options.")
    if kind == "toggle":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in TRUE_WORDS | FALSE_WORDS:
            return raw.strip().lower() in TRUE_WORDS
        raise ValueError("must be on or off.")
    if kind == "seed":
        value = _as_number(param, raw)
        if not isinstance(value, int) or not 0 <= value <= SEED_MAX:
            raise ValueError(f"a seed is a whole number from 0 to {SEED_MAX}.")
        return value
    raise ValueError("cannot be set this way.")


class ParameterError(SubmitError):
    """Submitted values that do not fit the function's parameters: `fields` maps each key to its problem."""

    def __init__(self, fields, definition):
        labels = {p["key"]: p.get("label", p["key"]) for p in definition}
        super().__init__("Check these settings: " + "; ".join(f"{labels.get(k, k)}: {m}" for k, m in fields.items()),
                         status=400)
        self.fields = fields


def _blank(raw):
    return raw is None or (isinstance(raw, str) and raw.strip() == "")


def clean(definition, values, files=None):
    """The customer's values checked against the definition → {key: value} (images as bytes), with defaults
    filled in and a random seed where none was given. Raises ParameterError naming every bad field; keys
    outside the definition are refused too (nothing unchecked reaches a provider)."""
    values, files = values or {}, files or {}
    known = {p["key"] for p in definition}
    fields = {k: "is not a setting of this tool." for k in values if k not in known}
    cleaned = {}
    for param in definition:
        key, kind = param["key"], param["type"]
        if kind == "image":
            data = files.get(key)
            if not _blank(values.get(key)):
                fields[key] = "send the image as a file upload."
            elif data:
                cleaned[key] = data
            elif param.get("required"):
                fields[key] = "choose an image."
            continue
        raw = values.get(key)
        if kind == "toggle" and _blank(raw):
            raw = param.get("default", False)
        if _blank(raw):
            if kind == "seed":
                cleaned[key] = secrets.randbelow(SEED_MAX + 1)
            elif param.get("default") is not None:
                cleaned[key] = param["default"]
            elif param.get("required"):
                fields[key] = "this is required."
            continue
        try:
            cleaned[key] = check_value(param, raw)
        except ValueError as exc:
            fields[key] = str(exc)
    if fields:
        raise ParameterError(fields, definition)
    return cleaned


def from_form(definition, form, files):
    """(values, image bytes) from a posted /f/<key> form: an unchecked checkbox sends nothing, so a toggle
    missing from the form is off."""
    values = {}
    for param in definition:
        name = field_name(param["key"])
        if param["type"] == "toggle":
            values[param["key"]] = form.get(name, "off")
        elif param["type"] != "image" and name in form:
            values[param["key"]] = form.get(name)
    uploads = {}
    for param in definition:
        upload = files.get(field_name(param["key"])) if param["type"] == "image" else None
        if upload is not None and upload.filename:
            uploads[param["key"]] = upload.stream.read()
    return values, uploads


def defaults(definition):
    """The values a fresh form starts with: each parameter's default (seeds stay empty: random)."""
    return {p["key"]: p["default"] for p in definition or []
            if p.get("default") is not None and p["type"] not in ("seed", "image")}


def price(base, definition, values):
    """The credits a job costs: the function's price times the multiplier of every price rule that applies,
    rounded up to a whole credit."""
    factor = 1.0
    for param in definition or []:
        rule = param.get("price_multiplier")
        if rule and param["key"] in values:
            factor *= float(rule.get(rule_key(values[param["key"]]), 1))
    return math.ceil(round(base * factor, 6))


def provider_params(job_params, config):
    """A job's values as its provider receives them: renamed by the provider config's param_names, a second
    image as a data URI read from storage."""
    names = config.get("param_names") or {}
    sent = {}
    for key, value in (job_params or {}).items():
        if isinstance(value, dict) and "file" in value:
            data = storage.read(value["file"])
            value = f"data:{value.get('content_type', 'image/png')};base64,{base64.b64encode(data).decode()}"
        sent[names.get(key, key)] = value
    return sent


def form_values(definition, job_params):
    """Values to pre-fill a form with from an earlier job (images are never carried over)."""
    known = {p["key"]: p["type"] for p in definition}
    return {k: v for k, v in (job_params or {}).items() if k in known and known[k] != "image"}
