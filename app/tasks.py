"""RQ entry points: thin wrappers that give each task a fresh database session and call services."""
from app.extensions import db
from app.services import jobs


def process_job(job_id):
    try:
        jobs.run(job_id)
    finally:
        # Nothing read for one job may be reused by the next: admin edits apply at once.
        db.session.remove()


def check_job(job_id, claim, polls=0):
    try:
        jobs.check(job_id, claim, polls)
    finally:
        db.session.remove()
