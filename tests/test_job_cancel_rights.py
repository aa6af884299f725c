"""Who may cancel someone's job, and the audit trail of staff cancels (finding 2 of the security review)."""
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, Job
from app.services import jobs
from tests import pipeline as p
from tests.helpers import login, make_user, post
from tests.images import image_bytes


def _queued_job(app):
    with app.app_context():
        p.local_function()
        customer = p.funded_customer(10)
        return jobs.submit(customer, "enhance", image_bytes()).id


def _cancels(app):
    with app.app_context():
        return [(r.entity_id, r.actor_email) for r in
                db.session.scalars(sa.select(AuditLog).where(AuditLog.action == "cancel").order_by(AuditLog.id))]


def test_a_viewer_cannot_cancel_a_customers_job(app, client):
    job_id = _queued_job(app)
    with app.app_context():
        login(client, make_user("viewer"))
    assert post(client, f"/jobs/{job_id}/cancel").status_code == 403
    with app.app_context():
        assert p.job(job_id).status == "queued"
    assert _cancels(app) == []


def test_support_cannot_cancel_a_staff_members_job(app, client):
    with app.app_context():
        p.local_function()
        colleague = make_user("admin", balance=10)
        job_id = jobs.submit(colleague, "enhance", image_bytes()).id
        login(client, make_user("support"))
    assert post(client, f"/jobs/{job_id}/cancel").status_code == 403
    with app.app_context():
        assert p.job(job_id).status == "queued"


@pytest.mark.parametrize("role", ["admin", "support"])
def test_staff_cancel_is_audited(app, client, role):
    job_id = _queued_job(app)
    with app.app_context():
        staff = make_user(role)
    login(client, staff)
    assert post(client, f"/jobs/{job_id}/cancel").status_code == 302
    with app.app_context():
        assert p.job(job_id).status == "cancelled"
    assert _cancels(app) == [(str(job_id), staff.email)]


def test_a_customer_cancelling_their_own_job_needs_no_audit_row(app, client):
    with app.app_context():
        p.local_function()
        customer = p.funded_customer(10)
        job_id = jobs.submit(customer, "enhance", image_bytes()).id
    login(client, customer)
    assert post(client, f"/jobs/{job_id}/cancel").status_code == 302
    with app.app_context():
        assert p.job(job_id).status == "cancelled"
    assert _cancels(app) == []


def test_bulk_cancel_audits_only_the_jobs_it_cancelled(app, client):
    with app.app_context():
        p.local_function()
        customer = p.funded_customer(10)
        queued = jobs.submit(customer, "enhance", image_bytes()).id
        finished = jobs.submit(customer, "enhance", image_bytes()).id
        db.session.execute(sa.update(Job).where(Job.id == finished).values(status="done"))
        db.session.commit()
        admin = make_user("admin")
    login(client, admin)
    resp = post(client, "/admin/jobs/action/", {"action": "cancel", "rowid": [queued, finished], "url": "/admin/jobs/"})
    assert resp.status_code == 302
    with app.app_context():
        assert (p.job(queued).status, p.job(finished).status) == ("cancelled", "done")
    assert _cancels(app) == [(str(queued), admin.email)]
