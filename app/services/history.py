"""A customer's studio history: their results as a gallery (filters, pages, thumbnails made once and kept in
storage), the settings of earlier jobs to start from, the queue position of a waiting job, and deleting a result.
"""
import io
import logging

import sqlalchemy as sa
from PIL import Image

from app.extensions import db
from app.models import AIFunction, Job
from app.models.jobs import JOB_STATUSES
from app.models.types import utcnow
from app.services import audit, parameters, storage

log = logging.getLogger(__name__)

FINISHED = ("done", "failed", "cancelled")
THUMBNAIL_SIZE = (320, 320)
PAGE_SIZE = 24


class HistoryError(ValueError):
    """A history action that cannot be done; the message says why."""


def visible(user_id):
    """The customer's own jobs they have not deleted."""
    return sa.select(Job).where(Job.user_id == user_id, Job.deleted_at.is_(None))


def gallery(user_id, function_key=None, status=None, page=1):
    """One page of the customer's jobs, newest first, filtered by function key and status."""
    query = visible(user_id)
    if function_key:
        query = query.where(Job.function_key == function_key)
    if status in JOB_STATUSES:
        query = query.where(Job.status == status)
    return db.paginate(query.order_by(Job.id.desc()), page=max(page, 1), per_page=PAGE_SIZE, error_out=False)


def used_functions(user_id):
    """(key, name) of every function the customer has jobs of, for the gallery's filter."""
    rows = db.session.execute(
        sa.select(Job.function_key, sa.func.max(AIFunction.name))
        .outerjoin(AIFunction, AIFunction.id == Job.function_id)
        .where(Job.user_id == user_id, Job.deleted_at.is_(None))
        .group_by(Job.function_key).order_by(Job.function_key)).all()
    return [(key, name or key) for key, name in rows]


def last_inputs(user, fn):
    """The settings of the customer's latest job of this function, to pre-fill its form (seeds start random
    again; images are never carried over)."""
    if user is None or not getattr(user, "is_authenticated", False) or not fn.parameters:
        return {}
    params = db.session.scalar(
        visible(user.id).with_only_columns(Job.params).where(Job.function_id == fn.id)
        .order_by(Job.id.desc()).limit(1))
    values = parameters.form_values(fn.parameters, params)
    return {k: v for k, v in values.items() if k not in {p["key"] for p in fn.parameters if p["type"] == "seed"}}


def rerun_inputs(user, fn, job_id):
    """The exact settings of one of the customer's jobs of this function (its seed included), or None."""
    job = db.session.scalar(visible(user.id).where(Job.id == job_id, Job.function_id == fn.id))
    return None if job is None else parameters.form_values(fn.parameters or [], job.params)


def queue_position(job):
    """1 for the next queued job to start, counting queued jobs ahead of it; None unless it is queued."""
    if job.status != "queued":
        return None
    return db.session.scalar(sa.select(sa.func.count()).select_from(Job)
                             .where(Job.status == "queued", Job.id <= job.id))


def thumbnail(job):
    """The storage ref of a finished job's thumbnail: made (PIL) the first time it is asked for, then
    kept (a second request reads it back). None when the job has no output."""
    if job.thumbnail_ref:
        return job.thumbnail_ref
    if job.status != "done" or not job.output_ref:
        return None
    with Image.open(io.BytesIO(storage.read(job.output_ref))) as img:
        img.thumbnail(THUMBNAIL_SIZE)
        out = io.BytesIO()
        img.convert("RGB").save(out, "WEBP", quality=80)
    ref = storage.save(out.getvalue(), ".webp")
    # Conditional: two first requests at once keep one thumbnail, and the loser's file is removed.
    kept = db.session.execute(sa.update(Job).where(Job.id == job.id, Job.thumbnail_ref.is_(None))
                              .values(thumbnail_ref=ref).returning(Job.id)).scalar()
    db.session.commit()
    if kept is None:
        storage.delete(ref)
        db.session.refresh(job)
        return job.thumbnail_ref
    job.thumbnail_ref = ref
    return ref


def delete_result(user, job_id):
    """Delete one of the customer's finished jobs: its files go from storage, the row stays (billing history
    points at it) marked deleted; audited and committed."""
    job = db.session.scalar(visible(user.id).where(Job.id == job_id))
    if job is None:
        raise HistoryError("This result does not exist or was already deleted.")
    if job.status not in FINISHED:
        raise HistoryError("This job is still running: cancel it first, or wait until it has finished.")
    refs = [job.input_ref, job.output_ref, job.thumbnail_ref] + [
        v["file"] for v in (job.params or {}).values() if isinstance(v, dict) and "file" in v]
    old = {"output_ref": job.output_ref, "status": job.status}
    job.deleted_at = utcnow()
    job.input_ref = job.output_ref = job.thumbnail_ref = None
    audit.record("delete", "Job", job.id, old=old, new={"deleted": True}, actor=user)
    db.session.commit()
    for ref in filter(None, refs):
        try:
            storage.delete(ref)
        except storage.StorageError:
            log.warning("job %s: could not delete stored file %s", job_id, ref)
    return job
