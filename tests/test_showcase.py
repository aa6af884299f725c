"""The showcase: a customer shares a finished result of their own; each item has a page with Open Graph and
JSON-LD and is in the sitemap; visitors report (rate limited); moderators blur, delete, restore and ban from
the Moderation grid, per role, each step audited; the site shows blurred items blurred and deleted ones as a
placeholder."""
import io
import json
import re

import pytest
import sqlalchemy as sa
from PIL import Image

from app.extensions import db
from app.models import AuditLog, Job, ShowcaseItem, ShowcaseReport, User
from app.models.types import utcnow
from app.services import showcase, storage
from tests import pipeline as p
from tests.helpers import login, make_user, post
from tests.images import image_bytes


def _job(user, fn, status="done"):
    """A job as the worker leaves it: input and output stored."""
    ref = storage.save(image_bytes(size=(64, 48), color=(20, 160, 220)), ".png")
    job = Job(user_id=user.id, function_id=fn.id, function_key=fn.key, status=status, input_ref=ref,
              input_meta={"content_type": "image/png"}, credits_charged=1,
              output_ref=ref if status == "done" else None, output_content_type="image/png" if status == "done" else None,
              finished_at=utcnow() if status == "done" else None)
    db.session.add(job)
    db.session.commit()
    return job


def _item(user=None, fn=None, **fields):
    fn = fn or p.local_function(f"fn{utcnow().microsecond}")
    user = user or make_user("customer")
    job = _job(user, fn)
    item = ShowcaseItem(job_id=job.id, user_id=user.id, function_key=fn.key, title=fields.pop("title", "Sunset"),
                        **fields)
    db.session.add(item)
    db.session.commit()
    return item


@pytest.fixture
def setup(app):
    with app.app_context():
        fn = p.local_function("upscale")
        owner = make_user("customer", email="owner@example.com")
        other = make_user("customer", email="other@example.com")
        done = _job(owner, fn)
        return {"fn_id": fn.id, "owner": owner, "other": other, "done": done.id,
                "queued": _job(owner, fn, status="queued").id, "others_job": _job(other, fn).id}


def test_owner_shares_a_finished_job_and_it_is_audited(app, client, setup):
    login(client, setup["owner"])
    page = client.get(f"/jobs/{setup['done']}").get_data(as_text=True)
    assert f'action="/jobs/{setup["done"]}/share"' in page and 'id="share"' in page
    resp = post(client, f"/jobs/{setup['done']}/share", {"title": "  My   sunset  "})
    assert resp.status_code == 302
    with app.app_context():
        item = db.session.scalars(sa.select(ShowcaseItem)).one()
        assert (item.title, item.user_id, item.function_key) == ("My sunset", setup["owner"].id, "upscale")
        audit = db.session.scalars(sa.select(AuditLog).where(AuditLog.action == "share")).one()
        assert audit.actor_id == setup["owner"].id and audit.entity_id == str(item.id)
        item_id = item.id
    assert resp.headers["Location"] == f"/showcase/{item_id}"
    # Shared once: the job page now links to it, and a second share is refused.
    assert f"/showcase/{item_id}" in client.get(f"/jobs/{setup['done']}").get_data(as_text=True)
    post(client, f"/jobs/{setup['done']}/share", {"title": "Again"})
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ShowcaseItem)) == 1


def test_only_own_finished_jobs_can_be_shared(app, client, setup):
    login(client, setup["owner"])
    assert post(client, f"/jobs/{setup['others_job']}/share", {"title": "Not mine"}).status_code == 404
    assert 'id="share"' in client.get(f"/jobs/{setup['queued']}").get_data(as_text=True)  # hidden until done
    post(client, f"/jobs/{setup['queued']}/share", {"title": "Too early"})
    assert post(client, f"/jobs/{setup['done']}/share", {"title": ""}).status_code == 302
    assert client.post(f"/jobs/{setup['done']}/share", data={"title": "No CSRF"}).status_code == 400
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ShowcaseItem)) == 0
        staff = make_user("admin")
        with pytest.raises(showcase.ShowcaseError):
            showcase.share(staff, setup["done"], "Staff cannot share a customer's job")
    # Staff see a customer's job page but get no share box for it.
    login(client, staff)
    assert 'id="share"' not in client.get(f"/jobs/{setup['done']}").get_data(as_text=True)


def test_item_page_has_open_graph_json_ld_and_is_in_the_sitemap(app, client, setup):
    with app.app_context():
        item_id = _item(setup["owner"], title="Harbour <at> night").id
    html = client.get(f"/showcase/{item_id}").get_data(as_text=True)
    assert "<h1>Harbour &lt;at&gt; night</h1>" in html
    og_image = re.search(r'<meta property="og:image" content="([^"]+)"', html).group(1)
    assert og_image.endswith(f"/media/showcase/{item_id}")
    assert '<meta property="og:title" content="Harbour &lt;at&gt; night">' in html
    block = re.search(r'<script type="application/ld\+json">(.*?)</script>', html, re.S).group(1)
    assert "<" not in block  # escaped: the title cannot close the script element
    data = json.loads(block)
    assert data["@type"] == "ImageObject" and data["name"] == "Harbour <at> night"
    assert data["contentUrl"] == og_image and data["url"].endswith(f"/showcase/{item_id}")
    image = client.get(f"/media/showcase/{item_id}")
    assert image.status_code == 200 and image.mimetype == "image/png"
    assert image.headers["Content-Security-Policy"] == storage.SANDBOX_CSP
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    sitemap = client.get("/sitemap.xml").get_data(as_text=True)
    assert f"/showcase/{item_id}</loc>" in sitemap and "/prompts</loc>" in sitemap and "/showcase</loc>" in sitemap
    assert "Harbour" in client.get("/showcase").get_data(as_text=True)


def test_a_stored_file_of_another_type_is_never_served_as_html(app, client, setup):
    with app.app_context():
        item = _item(setup["owner"])
        job = db.session.get(Job, item.job_id)
        job.output_ref = storage.save(b"<html><script>alert(1)</script></html>", ".html")
        job.output_content_type = "text/html"
        db.session.commit()
        item_id = item.id
    resp = client.get(f"/media/showcase/{item_id}")
    assert resp.mimetype == storage.OPAQUE and resp.headers["Content-Disposition"].startswith("attachment")


def test_visitors_report_once_each_and_are_rate_limited(app, client, setup):
    app.config["SHOWCASE_REPORT_LIMIT"] = "3 per minute"
    try:
        with app.app_context():
            item_id = _item(setup["owner"]).id
        bad = post(client, f"/showcase/{item_id}/report", {"reason": "", "details": ""})
        assert bad.status_code == 400 and "Choose a reason" in bad.get_data(as_text=True)
        assert post(client, f"/showcase/{item_id}/report", {"reason": "nsfw", "details": "Nudity"}).status_code == 302
        post(client, f"/showcase/{item_id}/report", {"reason": "spam"})  # same visitor: not counted twice
        limited = post(client, f"/showcase/{item_id}/report", {"reason": "spam"})
        assert limited.status_code == 429
        with app.app_context():
            assert db.session.get(ShowcaseItem, item_id).report_count == 1
            report = db.session.scalars(sa.select(ShowcaseReport)).one()
            assert (report.reason, report.details, report.status) == ("nsfw", "Nudity", "pending")
    finally:
        app.config["SHOWCASE_REPORT_LIMIT"] = "5 per hour"


def _moderate(client, action, ids, **extra):
    return post(client, "/admin/moderation/act", {"action": action, "item": [str(i) for i in ids], **extra})


@pytest.mark.parametrize("role,may", [("admin", True), ("support", True), ("viewer", False), ("customer", False)])
def test_moderation_grid_and_bulk_actions_per_role(app, client, setup, role, may):
    with app.app_context():
        items = [_item(setup["owner"], title=f"Item {n}").id for n in range(2)]
        login(client, make_user(role))
    grid = client.get("/admin/moderation/")
    assert grid.status_code == (200 if role != "customer" else 403)
    if role != "customer":
        assert "Item 0" in grid.get_data(as_text=True)
        assert ('value="blur"' in grid.get_data(as_text=True)) is may
    resp = _moderate(client, "blur", items)
    assert resp.status_code == (302 if may else 403)
    with app.app_context():
        blurred = {db.session.get(ShowcaseItem, i).is_blurred for i in items}
        audits = db.session.scalars(sa.select(AuditLog).where(AuditLog.action == "moderation_blur")).all()
    assert blurred == {may}
    assert len(audits) == (2 if may else 0)
    resp = post(client, "/admin/moderation/ban", {"item": [str(items[0])], "reason": "Explicit content"})
    assert resp.status_code == (302 if may else 403)
    with app.app_context():
        assert db.session.get(User, setup["owner"].id).is_banned is may


def test_anonymous_is_sent_to_login(client):
    assert "/login" in client.get("/admin/moderation/").headers["Location"]
    assert "/login" in post(client, "/admin/moderation/act", {"action": "blur"}).headers["Location"]


def test_support_cannot_moderate_staff_content_or_ban_staff(app, client, setup):
    with app.app_context():
        staff_item = _item(make_user("viewer"), title="Staff result").id
        login(client, make_user("support"))
    _moderate(client, "delete", [staff_item])
    post(client, "/admin/moderation/ban", {"item": [str(staff_item)], "reason": "No"})
    with app.app_context():
        item = db.session.get(ShowcaseItem, staff_item)
        assert not item.is_deleted and not item.user.is_banned


def test_blurred_item_is_blurred_on_the_site(app, client, setup):
    with app.app_context():
        item_id = _item(setup["owner"], title="Beach").id
        admin = make_user("admin")
    original = client.get(f"/media/showcase/{item_id}").data
    login(client, admin)
    _moderate(client, "blur", [item_id])
    anonymous = app.test_client()
    page = anonymous.get(f"/showcase/{item_id}").get_data(as_text=True)
    assert 'class="blurred-wrap"' in page and "may be sensitive" in page and 'content="noindex"' in page
    assert 'class="blurred-wrap"' in anonymous.get("/showcase").get_data(as_text=True)
    served = anonymous.get(f"/media/showcase/{item_id}")
    assert served.mimetype == "image/jpeg" and served.data != original  # a blurred rendering, not the original
    with Image.open(io.BytesIO(served.data)) as img:
        assert img.format == "JPEG"
    assert f"/showcase/{item_id}</loc>" not in anonymous.get("/sitemap.xml").get_data(as_text=True)
    # Staff still see the original in the grid.
    assert client.get(f"/admin/moderation/image/{item_id}").data == original
    _moderate(client, "unblur", [item_id])
    assert anonymous.get(f"/media/showcase/{item_id}").data == original


def test_deleted_item_shows_a_placeholder_and_can_be_restored(app, client, setup):
    with app.app_context():
        item_id = _item(setup["owner"], title="Gone soon").id
        login(client, make_user("admin"))
    _moderate(client, "delete", [item_id])
    anonymous = app.test_client()
    page = anonymous.get(f"/showcase/{item_id}")
    assert page.status_code == 410 and 'id="removed-placeholder"' in page.get_data(as_text=True)
    assert "Gone soon" not in page.get_data(as_text=True)
    assert anonymous.get(f"/media/showcase/{item_id}").status_code == 404
    assert "Gone soon" not in anonymous.get("/showcase").get_data(as_text=True)
    deleted = client.get("/admin/moderation/?status=deleted").get_data(as_text=True)
    assert "Gone soon" in deleted
    _moderate(client, "restore", [item_id])
    assert anonymous.get(f"/showcase/{item_id}").status_code == 200


def test_banned_creators_items_leave_the_site(app, client, setup):
    with app.app_context():
        item_id = _item(setup["owner"]).id
        login(client, make_user("admin"))
    assert post(client, "/admin/moderation/ban", {"item": [str(item_id)], "reason": ""}).status_code == 302
    with app.app_context():
        assert not db.session.get(User, setup["owner"].id).is_banned  # a reason is required
    post(client, "/admin/moderation/ban", {"item": [str(item_id)], "reason": "Repeated abuse"})
    with app.app_context():
        owner = db.session.get(User, setup["owner"].id)
        assert owner.is_banned and owner.ban_reason == "Showcase moderation: Repeated abuse"
        assert db.session.scalars(sa.select(AuditLog).where(AuditLog.action == "ban")).one().entity_id == str(owner.id)
    assert app.test_client().get(f"/showcase/{item_id}").status_code == 410


def test_report_queue_is_ordered_by_report_count_and_dismissing_clears_it(app, client, setup):
    with app.app_context():
        few = _item(setup["owner"], title="Few reports", report_count=1).id
        many = _item(setup["owner"], title="Many reports", report_count=5).id
        _item(setup["owner"], title="Never reported")
        db.session.add(ShowcaseReport(item_id=many, reason="spam", details="Ad link", reporter_ip="127.0.0.9"))
        db.session.commit()
        login(client, make_user("support"))
    queue = client.get("/admin/moderation/reports").get_data(as_text=True)
    assert queue.index("Many reports") < queue.index("Few reports") and "Never reported" not in queue
    assert "Spam or advertising: “Ad link”" in queue
    _moderate(client, "dismiss", [many])
    with app.app_context():
        assert db.session.get(ShowcaseItem, many).report_count == 0
        assert db.session.scalars(sa.select(ShowcaseReport)).one().status == "dismissed"
    assert "Many reports" not in client.get("/admin/moderation/reports").get_data(as_text=True)


def test_grid_filters_by_function_user_and_date(app, client, setup):
    with app.app_context():
        other_fn = p.local_function("colorize")
        _item(setup["owner"], title="Owner upscale")
        _item(setup["other"], other_fn, title="Other colorize")
        login(client, make_user("viewer"))

    def shown(query):
        html = client.get(f"/admin/moderation/{query}").get_data(as_text=True)
        return {t for t in ("Owner upscale", "Other colorize") if t in html}

    assert shown("") == {"Owner upscale", "Other colorize"}
    assert shown("?function=colorize") == {"Other colorize"}
    assert shown("?user=other@") == {"Other colorize"}
    assert shown(f"?user={setup['owner'].id}") == {"Owner upscale"}
    assert shown("?since=2999-01-01") == set()
    assert shown(f"?until={utcnow():%Y-%m-%d}") == {"Owner upscale", "Other colorize"}


def test_bad_moderation_input_changes_nothing(app, client, setup):
    with app.app_context():
        item_id = _item(setup["owner"]).id
        login(client, make_user("admin"))
    assert _moderate(client, "explode", [item_id]).status_code == 302
    assert _moderate(client, "blur", []).status_code == 302
    assert _moderate(client, "blur", [item_id, 999999]).status_code == 302
    assert post(client, "/admin/moderation/act", {"action": "blur", "item": ["1;drop"]}).status_code == 404
    with app.app_context():
        assert not db.session.get(ShowcaseItem, item_id).is_blurred
        assert not db.session.scalars(sa.select(AuditLog).where(AuditLog.action.like("moderation_%"))).all()


def test_owner_withdraws_their_item(app, client, setup):
    with app.app_context():
        item_id = _item(setup["owner"]).id
    login(client, setup["other"])
    assert post(client, f"/showcase/{item_id}/withdraw").status_code == 404
    login(client, setup["owner"])
    assert post(client, f"/showcase/{item_id}/withdraw").status_code == 302
    with app.app_context():
        assert db.session.get(ShowcaseItem, item_id) is None
