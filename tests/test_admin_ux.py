"""The admin reads like a product: times in the owner's timezone, sizes, money and status badges everywhere; row
actions that take the bulk actions' path and checks; the job page's images and log; structured editors for plan
limits and translations; the user page at a glance; and big lists that never COUNT(*)."""
import re
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from werkzeug.datastructures import MultiDict

from app.admin import formatters
from app.extensions import db
from app.models import AuditLog, CreditLedger, Job, JobLog, Page, Payment, Plan, User
from app.services import settings, storage
from tests import pipeline as p
from tests.helpers import flashes, form_values, login, make_user, post
from tests.images import image_bytes

FONT_AWESOME = "bootstrap/bootstrap4/css/font-awesome.min.css"


def staff_client(app, role, **fields):
    client = app.test_client()
    with app.app_context():
        user = make_user(role, **fields)
        login(client, user)
    return client, user


def add_job(user_id, status="failed", **fields):
    job = Job(user_id=user_id, function_key="enhance", provider_key="local", status=status, credits_charged=3,
              created_at=datetime(2026, 7, 1, 12, 30, tzinfo=timezone.utc), **fields)
    db.session.add(job)
    db.session.commit()
    return job.id


# --- formatters ---


def test_times_show_in_the_owners_timezone_without_microseconds(app):
    client, owner = staff_client(app, "admin")
    with app.app_context():
        customer = make_user("customer")
        add_job(customer.id)
        settings.update({"site.timezone": "Europe/Berlin"})
    html = client.get("/admin/jobs/").get_data(as_text=True)
    # 12:30 UTC in July is 14:30 in Berlin (summer time); the exact UTC time is on hover.
    assert "1 Jul 2026, 14:30 CEST" in html
    assert 'title="2026-07-01 12:30:00 UTC"' in html
    assert "12:30:00.000" not in html and "+00:00</td>" not in html
    with app.app_context():
        settings.update({"site.timezone": "UTC"})
    assert "1 Jul 2026, 12:30 UTC" in client.get("/admin/jobs/").get_data(as_text=True)


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "../../etc/passwd", "Europe/"])
def test_timezone_setting_takes_only_iana_names(app, name):
    with app.app_context():
        with pytest.raises(settings.SettingError) as refused:
            settings.parse_form(MultiDict({"site.timezone": name}))
        assert "timezone name" in refused.value.errors["site.timezone"]
        chosen = settings.parse_form(MultiDict({"site.timezone": "America/New_York"}))
        assert chosen["site.timezone"] == "America/New_York"
        assert settings.get("site.timezone") == "UTC"  # nothing saved


@pytest.mark.parametrize("value,shown", [(0, "0 bytes"), (1023, "1023 bytes"), (1024, "1 KB"), (1536, "1.5 KB"),
                                         (10 * 1024 * 1024, "10 MB"), (5 * 1024 ** 3, "5 GB"), (None, "")])
def test_sizes_read_in_kb_and_mb(value, shown):
    assert formatters.file_size(value) == shown


@pytest.mark.parametrize("minor,currency,shown", [(999, "USD", "$9.99"), (500, "EUR", "€5.00"), (500, "JPY", "¥500"),
                                                  (123456, "GBP", "£1,234.56"), (1000, "CHF", "CHF10.00"),
                                                  (None, "USD", "")])
def test_money_shows_currency_and_minor_units(minor, currency, shown):
    assert formatters.money(minor, currency).replace("\xa0", " ") == shown


def test_every_view_shows_money_sizes_and_badges_by_default(app):
    client, _owner = staff_client(app, "admin")
    with app.app_context():
        customer = make_user("customer", is_banned=True, ban_reason="fraud")
        db.session.add(Plan(name="Studio", price=1999, currency="EUR", credits=100, kind="monthly"))
        db.session.add(Payment(user_id=customer.id, provider="stripe", status="review", amount=4200, currency="USD",
                               review_reason="no order"))
        db.session.commit()
    assert "€19.99" in client.get("/admin/plans/").get_data(as_text=True)
    payments_page = client.get("/admin/payments/").get_data(as_text=True)
    assert "$42.00" in payments_page and 'np-badge--warn">needs review<' in payments_page
    assert 'np-badge--bad">banned<' in client.get("/admin/users/").get_data(as_text=True)
    with app.app_context():
        function_id = p.local_function("restore").id  # max_file_size: 10 MiB by default
    assert "10 MB" in client.get(f"/admin/functions/details/?id={function_id}").get_data(as_text=True)


# --- row actions ---


def _row_forms(html, action):
    return re.findall(rf'<input type="hidden" name="action" value="{action}">\s*'
                      r'<input type="hidden" name="rowid" value="(\d+)">', html)


def test_job_rows_offer_retry_and_cancel_only_where_the_role_may(app):
    with app.app_context():
        customer, colleague = make_user("customer"), make_user("admin")
        failed, queued = add_job(customer.id), add_job(customer.id, status="queued")
        staff_job = add_job(colleague.id)
    for role, retry, cancel in (("admin", {failed, staff_job}, {queued}), ("support", {failed}, {queued}),
                                ("viewer", set(), set())):
        client, _ = staff_client(app, role)
        html = client.get("/admin/jobs/").get_data(as_text=True)
        assert set(map(int, _row_forms(html, "retry"))) == retry, role
        assert set(map(int, _row_forms(html, "cancel"))) == cancel, role
        if cancel:
            assert 'data-confirm="Cancel this job?' in html  # destructive: asks first


def test_support_retries_a_customers_job_from_its_row_but_not_a_staff_members(app):
    with app.app_context():
        customer, colleague = make_user("customer"), make_user("admin")
        mine, theirs = add_job(customer.id), add_job(colleague.id)
    client, support = staff_client(app, "support")
    for job_id in (mine, theirs):
        resp = post(client, "/admin/jobs/action/", {"action": "retry", "rowid": job_id, "url": "/admin/jobs/"})
        assert resp.status_code == 302
    with app.app_context():
        # Retried (then failed again at once: these jobs' function is gone) only where support may act.
        assert db.session.scalars(sa.select(AuditLog.entity_id).where(AuditLog.action == "retry")).all() == [str(mine)]
        retried = db.session.scalars(sa.select(JobLog.job_id).where(JobLog.message.like("Retried by%"))).all()
        assert retried == [mine]
    viewer, _ = staff_client(app, "viewer")
    assert post(viewer, "/admin/jobs/action/", {"action": "retry", "rowid": theirs}).status_code == 403


def test_row_action_without_csrf_is_refused(app):
    with app.app_context():
        job_id = add_job(make_user("customer").id)
    client, _ = staff_client(app, "admin")
    assert client.post("/admin/jobs/action/", data={"action": "retry", "rowid": job_id}).status_code == 400
    with app.app_context():
        assert db.session.get(Job, job_id).status == "failed"


def test_user_rows_offer_credits_and_ban_where_the_role_may(app):
    with app.app_context():
        customer, staff = make_user("customer"), make_user("support")
    for role, expected in (("admin", {customer.id, staff.id}), ("support", {customer.id}), ("viewer", set())):
        client, me = staff_client(app, role)
        html = client.get("/admin/users/").get_data(as_text=True)
        offered = {int(i) for i in re.findall(r'href="/admin/users/credits\?id=(\d+)"', html)}
        banned = {int(i) for i in re.findall(r'href="/admin/users/ban\?id=(\d+)"', html)}
        # An admin may act on everyone but never bans the last active admin (here: themself, the only one).
        assert offered - {me.id} == expected, role
        assert banned - {me.id} == expected, role


def test_every_row_action_icon_exists_in_the_bundled_font(app):
    import flask_admin

    css = open(f"{flask_admin.__path__[0]}/static/{FONT_AWESOME}").read()
    icons = {cls for view in app.extensions["neurapix_admin"]._views
             for action in (getattr(view, "column_extra_row_actions", None) or [])
             for cls in action.icon_class.split() if cls.startswith("fa-")}
    assert {"fa-money", "fa-ban", "fa-repeat", "fa-stop-circle"} <= icons
    for icon in icons:
        assert f".{icon}:before" in css, icon


def test_bulk_credits_for_two_customers_through_one_form(app):
    with app.app_context():
        a, b = make_user("customer", balance=5), make_user("customer", balance=5)
        staff = make_user("support")
    client, _ = staff_client(app, "support")
    resp = post(client, "/admin/users/action/", {"action": "credits", "rowid": [a.id, b.id, staff.id],
                                                 "url": "/admin/users/"})
    assert resp.status_code == 302 and f"id={a.id}&id={b.id}" in resp.headers["Location"]
    assert staff.email not in client.get(resp.headers["Location"]).get_data(as_text=True)  # left out: not a customer
    form_url = resp.headers["Location"]

    # Bad input changes nothing, and says why.
    bad = post(client, form_url, {"amount": "lots", "reason": "goodwill"})
    assert bad.status_code == 400 and "whole number" in bad.get_data(as_text=True)
    with app.app_context():
        assert [db.session.get(User, i).balance for i in (a.id, b.id)] == [5, 5]

    assert post(client, form_url, {"amount": "20", "reason": "goodwill"}).status_code == 302
    with app.app_context():
        assert [db.session.get(User, i).balance for i in (a.id, b.id)] == [25, 25]
        assert db.session.scalar(sa.select(sa.func.count()).select_from(CreditLedger)
                                 .where(CreditLedger.reason == "goodwill")) == 2
    # Support cannot reach a staff member through the form's address either.
    assert post(client, f"/admin/users/credits?id={a.id}&id={staff.id}", {"amount": "1", "reason": "x"}).status_code == 403


def test_bulk_ban_asks_a_reason_and_bans_each(app):
    with app.app_context():
        a, b = make_user("customer"), make_user("customer")
    client, _ = staff_client(app, "admin")
    resp = post(client, "/admin/users/action/", {"action": "ban", "rowid": [a.id, b.id], "url": "/admin/users/"})
    form_url = resp.headers["Location"]
    page = client.get(form_url).get_data(as_text=True)
    assert 'data-confirm="Ban these 2 users?"' in page
    assert post(client, form_url, {"reason": ""}).status_code == 400
    assert post(client, form_url, {"reason": "spam ring"}).status_code == 302
    with app.app_context():
        assert all(db.session.get(User, i).is_banned for i in (a.id, b.id))


# --- the job page ---


def test_job_page_shows_input_and_output_images_and_the_log(app):
    with app.app_context():
        customer = make_user("customer")
        png = image_bytes("PNG")
        job_id = add_job(customer.id, status="done", input_ref=storage.save(png, ".png"),
                         output_ref=storage.save(png, ".png"), output_content_type="image/png",
                         input_meta={"content_type": "image/png", "size": 2048})
        db.session.add(JobLog(job_id=job_id, message="Provider answered", level="info", latency_ms=120,
                              created_at=datetime(2026, 7, 1, 12, 31, tzinfo=timezone.utc)))
        db.session.commit()
    client, _ = staff_client(app, "support")
    html = client.get(f"/admin/jobs/details/?id={job_id}").get_data(as_text=True)
    for which in ("input", "output"):
        assert f'<img src="/jobs/{job_id}/{which}"' in html
        served = client.get(f"/jobs/{job_id}/{which}")
        assert served.status_code == 200 and served.mimetype == "image/png"
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in served.headers["Content-Security-Policy"]
    assert "Provider answered" in html and "120 ms" in html and "1 Jul 2026, 12:31 UTC" in html


# --- structured editors ---


def _plan_form(client, plan_id, rows):
    data = form_values(client.get(f"/admin/plans/edit/?id={plan_id}").get_data(as_text=True), "name")
    data.setlist("limits-key", [k for k, _v in rows])
    data.setlist("limits-value", [v for _k, v in rows])
    return client.post(f"/admin/plans/edit/?id={plan_id}", data=data)


def test_plan_limits_are_rows_that_round_trip(app):
    with app.app_context():
        plan = Plan(name="Pro", price=900, credits=50, limits={"jobs_per_day": 100})
        db.session.add(plan)
        db.session.commit()
        plan_id = plan.id
    client, _ = staff_client(app, "admin")
    html = client.get(f"/admin/plans/edit/?id={plan_id}").get_data(as_text=True)
    assert "data-kv-editor" in html and '<option value="jobs_per_day" selected>' in html
    assert 'name="limits-value" value="100"' in html and "<textarea" not in html.split("data-kv-editor")[1][:200]

    resp = _plan_form(client, plan_id, [("jobs_per_day", "40"), ("max_file_size", "20971520"), ("", "")])
    assert resp.status_code == 302, flashes(resp.get_data(as_text=True))
    with app.app_context():
        assert db.session.get(Plan, plan_id).limits == {"jobs_per_day": 40, "max_file_size": 20971520}
    # Removing every row removes every limit.
    assert _plan_form(client, plan_id, []).status_code == 302
    with app.app_context():
        assert db.session.get(Plan, plan_id).limits == {}


@pytest.mark.parametrize("rows,message", [
    ([("jobs_per_day", "lots")], "enter a whole number"),
    ([("jobs_per_day", "5"), ("jobs_per_day", "6")], "is set twice"),
    ([("max_file_size", "-1")], "use 0 or more"),
    ([("", "5")], "Choose which limit"),
    ([("free_lunch", "1")], "is not a plan limit"),
])
def test_bad_plan_limits_are_refused_and_change_nothing(app, rows, message):
    with app.app_context():
        plan = Plan(name="Pro", price=900, credits=50, limits={"jobs_per_day": 100})
        db.session.add(plan)
        db.session.commit()
        plan_id = plan.id
    client, _ = staff_client(app, "admin")
    resp = _plan_form(client, plan_id, rows)
    assert resp.status_code == 200 and message in resp.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Plan, plan_id).limits == {"jobs_per_day": 100}


def _page_form(client, page_id, rows):
    data = form_values(client.get(f"/admin/pages/edit/?id={page_id}").get_data(as_text=True), "slug")
    for i, column in enumerate(("language", "field", "text")):
        data.setlist(f"translations-{column}", [row[i] for row in rows])
    return client.post(f"/admin/pages/edit/?id={page_id}", data=data)


def test_translations_are_rows_that_round_trip_and_bad_rows_change_nothing(app):
    with app.app_context():
        page = Page(slug="about-us", title="About us", html_content="<p>Hi</p>",
                    translations={"de": {"title": "Über uns"}})
        db.session.add(page)
        db.session.commit()
        page_id = page.id
    client, _ = staff_client(app, "admin")
    html = client.get(f"/admin/pages/edit/?id={page_id}").get_data(as_text=True)
    assert 'name="translations-language" value="de"' in html and "Über uns</textarea>" in html

    rows = [("de", "title", "Über uns"), ("FR", "title", "À propos"),
            ("fr", "html_content", "<p onclick='x()'>Salut</p>")]
    assert _page_form(client, page_id, rows).status_code == 302
    with app.app_context():
        saved = db.session.get(Page, page_id).translations
        assert saved == {"de": {"title": "Über uns"}, "fr": {"title": "À propos", "html_content": "<p>Salut</p>"}}

    for bad, message in (([("de", "title", "a"), ("de", "title", "b")], "given twice"),
                         ([("Deutsch", "title", "x")], "not a language code"),
                         ([("de", "", "x")], "needs a language code and a field")):
        resp = _page_form(client, page_id, bad)
        assert resp.status_code == 200 and message in resp.get_data(as_text=True)
        with app.app_context():
            assert db.session.get(Page, page_id).translations == saved


# --- the user page and the users list ---


def test_user_page_shows_balance_plan_spend_jobs_payments_ledger_and_the_stripe_customer(app):
    from app.services import credits

    with app.app_context():
        settings.update({"payments.stripe_secret_key": "sk_test_dashboard"})
        plan = Plan(name="Studio", price=1999, credits=100)
        db.session.add(plan)
        db.session.commit()
        customer = make_user("customer", plan_id=plan.id, stripe_customer_id="cus_Q1w2e3")
        for amount, status in ((1999, "succeeded"), (1999, "succeeded"), (500, "refunded")):
            db.session.add(Payment(user_id=customer.id, provider="stripe", status=status, amount=amount,
                                   currency="USD", external_id="pi_abc123", credits=100))
        credits.adjust(customer.id, 7, reason="welcome gift", actor_id=None)
        db.session.commit()
        add_job(customer.id, status="done")
    client, _ = staff_client(app, "support")
    html = client.get(f"/admin/users/details/?id={customer.id}").get_data(as_text=True)
    assert "Studio" in html and "$39.98" in html  # refunded payments are not spend
    assert "7 credits" in html and 'np-badge--warn">low<' in html  # under the default threshold of 10
    assert "https://dashboard.stripe.com/test/customers/cus_Q1w2e3" in html
    assert "https://dashboard.stripe.com/test/payments/pi_abc123" in html
    assert "welcome gift" in html and "/admin/jobs/details/?id=" in html and "$19.99" in html
    for heading in ("Jobs", "Payments", "Credit ledger"):
        assert f"<b>{heading}</b>" in html


def test_users_list_shows_total_spend_and_marks_low_balances(app):
    with app.app_context():
        settings.update({"customers.low_balance": 50})
        rich, poor = make_user("customer", balance=500), make_user("customer", balance=3)
        db.session.add(Payment(user_id=rich.id, provider="manual", status="succeeded", amount=12345, currency="EUR"))
        db.session.commit()
    client, _ = staff_client(app, "viewer")
    rows = client.get("/admin/users/").get_data(as_text=True).split("<tr>")
    rich_row = next(r for r in rows if rich.email in r)
    poor_row = next(r for r in rows if poor.email in r)
    assert "€123.45" in rich_row and "low" not in rich_row
    assert 'np-badge--warn">low<' in poor_row and "nothing yet" in poor_row


# --- big lists: no COUNT(*) ---


@pytest.mark.parametrize("url", ["/admin/jobs/", "/admin/jobs/?flt0_status_equals=failed", "/admin/ledger/",
                                 "/admin/audit/", "/admin/job_logs/", "/admin/jobs/?page=3"])
def test_big_lists_never_count_their_rows(app, url):
    with app.app_context():
        customer = make_user("customer")
        job_id = add_job(customer.id)
        db.session.add(JobLog(job_id=job_id, message="hello"))
        db.session.commit()
    client, _ = staff_client(app, "admin")
    statements = []

    def capture(_conn, _cursor, statement, *_args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        resp = client.get(url)
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    assert resp.status_code == 200
    # The list was read through this engine.
    assert any(re.search(r"FROM (jobs|credit_ledger|audit_log|job_logs)\b", s) for s in statements), statements
    counts = [s for s in statements if re.search(r"\bcount\s*\(", s, re.I)]
    assert counts == [], counts


def test_admin_templates_share_the_formatters_as_filters(app):
    from app.models import Backup
    from tests.factories import make_row

    client, _ = staff_client(app, "admin")
    with app.app_context():
        settings.update({"site.timezone": "America/New_York"})
        backup = make_row(Backup)
        backup.created_at = datetime(2026, 1, 15, 17, 5, tzinfo=timezone.utc)
        db.session.commit()
        backup_id = backup.id
        rendered = app.jinja_env.from_string("{{ n|file_size }} · {{ s|status_badge }} · {{ m|money('EUR') }}").render(
            n=3 * 1024 * 1024, s="failed", m=250)
    assert rendered == '3 MB · <span class="np-badge np-badge--bad">failed</span> · €2.50'
    html = client.get(f"/admin/backups/delete/confirm/?id={backup_id}").get_data(as_text=True)
    assert "15 Jan 2026, 12:05 EST" in html


def test_payments_link_to_the_gateways_dashboard(app):
    with app.app_context():
        settings.update({"payments.paypal_mode": "live"})
        customer = make_user("customer")
        for provider, external_id in (("paypal", "8MC585209K746392H"), ("stripe", "pi_live123"), ("manual", "cash-1")):
            db.session.add(Payment(user_id=customer.id, provider=provider, status="succeeded", amount=100,
                                   currency="USD", external_id=external_id))
        db.session.commit()
    client, _ = staff_client(app, "viewer")
    html = client.get("/admin/payments/").get_data(as_text=True)
    assert 'href="https://www.paypal.com/activity/payment/8MC585209K746392H"' in html
    assert 'href="https://dashboard.stripe.com/payments/pi_live123"' in html  # no test key: live dashboard
    assert "cash-1" in html and "cash-1</a>" not in html
