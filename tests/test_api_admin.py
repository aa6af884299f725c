"""Client apps in the admin (keys and secrets shown once, revoke, usage, users by app) and the OpenAPI document."""
import re

import sqlalchemy as sa
from openapi_spec_validator import validate

from app.extensions import db
from app.models import ApiKey, AuditLog, ClientApp, User
from app.services import analytics, apps
from tests import pipeline as p
from tests.helpers import form_values, login, make_user, post
from tests.test_api import call, gen, make_app


def _admin(app, client, role="admin"):
    with app.app_context():
        login(client, make_user(role))


def test_admin_creates_an_app_and_a_key_shown_once(app, client):
    with app.app_context():
        p.local_function("enhance", operation="noop")
    _admin(app, client)
    page = client.get("/admin/apps/new/").get_data(as_text=True)
    data = form_values(page)
    for name, value in {"name": "VideoAI", "webhook_url": "ftp://nope", "allowed_functions": "enhance",
                        "rate_limit_per_minute": "30", "max_jobs_in_flight": "4", "starting_credits": "25"}.items():
        data[name] = value  # MultiDict.update would add a second value
    refused = client.post("/admin/apps/new/", data=data)
    assert refused.status_code == 200 and "http(s) URL" in refused.get_data(as_text=True)
    data["webhook_url"] = "https://videoai.example.com/hooks"
    assert client.post("/admin/apps/new/", data=data).status_code == 302
    with app.app_context():
        row = db.session.scalars(sa.select(ClientApp)).one()
        assert (row.allowed_functions, row.starting_credits, row.max_jobs_in_flight) == (["enhance"], 25, 4)
        app_id = row.id
        assert db.session.scalar(sa.select(AuditLog.action).where(AuditLog.entity == "ClientApp")) == "create"
    shown = post(client, f"/admin/apps/new-key?id={app_id}", {"name": "iOS"}).get_data(as_text=True)
    raw = re.search(r'value="(npx_live_[^"]+)"', shown).group(1)
    assert "not shown again" in shown
    details = client.get(f"/admin/apps/details/?id={app_id}").get_data(as_text=True)
    assert raw not in details and raw[:15] in details and "Usage" in details
    assert call(app.test_client(), "GET", "/functions", raw).status_code == 200
    with app.app_context():
        key_id = db.session.scalar(sa.select(ApiKey.id))
        assert raw not in str(db.session.scalars(sa.select(AuditLog.new_values)).all())
    post(client, f"/admin/apps/revoke-key?id={app_id}", {"key_id": key_id, "confirm": "on"})
    assert call(app.test_client(), "GET", "/functions", raw).status_code == 401
    secret_page = post(client, f"/admin/apps/rotate-secret?id={app_id}", {}).get_data(as_text=True)
    secret = re.search(r'value="(whsec_[^"]+)"', secret_page).group(1)
    with app.app_context():
        assert apps.webhook_secret(db.session.get(ClientApp, app_id)) == secret
    assert secret not in client.get(f"/admin/apps/details/?id={app_id}").get_data(as_text=True)


def test_keys_and_secrets_are_for_admins_only(app, client):
    with app.app_context():
        app_id, _raw = make_app()
    _admin(app, client, "viewer")
    assert "Create API key" not in client.get(f"/admin/apps/details/?id={app_id}").get_data(as_text=True)
    assert post(client, f"/admin/apps/new-key?id={app_id}", {}).status_code == 403
    assert post(client, f"/admin/apps/rotate-secret?id={app_id}", {}).status_code == 403
    support = app.test_client()
    _admin(app, support, "support")
    assert support.get(f"/admin/apps/details/?id={app_id}").status_code == 403
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(ApiKey.id))) == 1


def test_usage_per_app_on_the_dashboard_and_the_apps_page_comes_from_the_rollups(app, client):
    with app.app_context():
        p.local_function("enhance", operation="noop")
        app_id, raw = make_app()
        make_app("Idle")
    api = app.test_client()
    assert gen(api, raw, user="a").status_code == 202
    cancelled = gen(api, raw, user="b").get_json()["job_id"]
    call(api, "POST", f"/jobs/{cancelled}/cancel", raw)
    p.drain(app)
    with app.app_context():
        analytics.refresh_changed()  # the scheduler's tick, run here
        usage = apps.app_usage(app_id)
        assert usage["recent"] == usage["total"] == {"jobs": 2, "succeeded": 1, "errors": 0, "credits": 3}
        assert usage["users"] == 2
    _admin(app, client, "viewer")
    page = client.get(f"/admin/apps/details/?id={app_id}").get_data(as_text=True)
    assert re.search(r"Last 30 days</th><td>2</td><td>1</td>\s*<td>0</td><td>3</td>", page)
    home = client.get("/admin/?range=7d").get_data(as_text=True)
    panel = home[home.index('id="panel-apps"'):]
    assert re.search(r"PhotoMania</th><td>2</td><td>1</td><td>0</td><td>0.0</td><td>3</td>", panel)
    assert re.search(r"Idle</th><td>0</td><td>0</td><td>0</td><td>0.0</td><td>0</td>", panel)
    csv = client.get("/admin/dashboard.csv?chart=apps&range=7d").get_data(as_text=True)
    assert csv.splitlines()[1:] == ["PhotoMania,2,1,0,0.0,3", "Idle,0,0,0,0.0,0"]


def test_the_user_list_filters_by_app(app, client):
    with app.app_context():
        _a, key_a = make_app("Alpha")
        _b, key_b = make_app("Beta")
        make_user("customer", email="site-user@example.com")
    api = app.test_client()
    call(api, "POST", "/users/alpha-1/tokens", key_a, json={"amount": 1, "reason": "x"})
    call(api, "POST", "/users/beta-1/tokens", key_b, json={"amount": 1, "reason": "x"})
    _admin(app, client)
    page = client.get("/admin/users/?flt0_0=Alpha").get_data(as_text=True)
    assert "alpha-1" in page and "beta-1" not in page and "site-user@example.com" not in page
    with app.app_context():
        user = db.session.scalars(sa.select(User).where(User.external_id == "alpha-1")).one()
        assert (user.email, str(user)) == (None, f"alpha-1 (app #{user.app_id})")
        assert not user.check_password("") and not user.email_job_failed


def test_the_openapi_document_validates_and_lists_every_route(app, client):
    resp = client.get("/api/v1/openapi.json")
    spec = resp.get_json()
    validate(spec)
    assert spec["openapi"] == "3.1.0"
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    routes = {(re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule), method.lower())
              for rule in app.url_map.iter_rules() if rule.endpoint.startswith("api.")
              and rule.endpoint not in ("api.openapi", "api.reference")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == routes and len(routes) == 9
    generate = spec["paths"]["/api/v1/generate"]["post"]
    assert set(generate["responses"]) == {"202", "400", "401", "402", "404", "409", "429"}
    body = spec["components"]["schemas"]["GenerateRequest"]
    assert body["properties"]["priority"]["maximum"] == 100 and body["required"] == ["function"]
    assert "WebhookPayload" in spec["components"]["schemas"]


def test_the_reference_page_loads_vendored_files_only(app, client):
    page = client.get("/api/v1/reference").get_data(as_text=True)
    assert "<script>" not in page and "https://" not in page
    assert 'data-spec-url="/api/v1/openapi.json"' in page
    assert client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200


def test_staff_edit_an_app_user_without_an_email_and_no_sign_in_actions_apply(app, client):
    with app.app_context():
        _a, key = make_app("Alpha")
    call(app.test_client(), "POST", "/users/alpha-9/tokens", key, json={"amount": 1, "reason": "x"})
    with app.app_context():
        user_id = db.session.scalar(sa.select(User.id).where(User.external_id == "alpha-9"))
    support = app.test_client()
    _admin(app, support, "support")
    page = support.get(f"/admin/users/edit/?id={user_id}").get_data(as_text=True)
    assert support.post(f"/admin/users/edit/?id={user_id}", data=form_values(page)).status_code == 302
    details = support.get(f"/admin/users/details/?id={user_id}").get_data(as_text=True)
    assert "Add or remove credits" in details and "Send password reset email" not in details
    assert post(support, f"/admin/users/reset-email?id={user_id}", {}).status_code == 403
    with app.app_context():
        assert db.session.get(User, user_id).email is None
