"""The public showcase: results customers chose to share, visitors' reports, and moderation (blur, soft
delete, restore, dismiss reports, ban the creator) — each entry point checks the actor, audits and commits.

A shared item shows its job's stored output. Blurred items are served as a blurred rendering made here, so the
original never reaches the public; soft-deleted items and items of banned customers leave a placeholder.
"""
import io
from datetime import datetime, time, timezone

import sqlalchemy as sa
from PIL import Image, ImageFilter

from app.extensions import db
from app.models import Job, ShowcaseItem, ShowcaseReport, User
from app.models.showcase import REPORT_REASONS
from app.models.types import utcnow
from app.services import accounts, audit, permissions, storage

PAGE_SIZE = 24
MODERATION_PAGE_SIZE = 48
MAX_TITLE = 120
MAX_DETAILS = 500
BLUR_EDGE = 480  # blurred renderings are made from a copy at most this many pixels wide or high
ACTIONS = ("blur", "unblur", "delete", "restore", "dismiss")


class ShowcaseError(ValueError):
    """A refused share, report or moderation step; the message is for the person who asked."""


# --- sharing (the customer) ---


def item_for_job(job_id):
    return db.session.scalars(sa.select(ShowcaseItem).where(ShowcaseItem.job_id == job_id)).first()


def may_share(user, job):
    """Only the job's owner, only a finished job with a result, only once."""
    return (user is not None and getattr(user, "is_authenticated", False) and job.user_id == user.id
            and job.status == "done" and bool(job.output_ref) and not user.is_banned)


def share(user, job_id, title):
    """Put the user's finished job on the showcase under `title`; ShowcaseError says why not."""
    job = db.session.get(Job, job_id)
    if job is None or job.user_id != user.id:
        raise ShowcaseError("You can share only your own results.")
    if job.status != "done" or not job.output_ref:
        raise ShowcaseError("Only a finished job with a result can be shared.")
    if user.is_banned:
        raise ShowcaseError("This account cannot share results.")
    if item_for_job(job.id) is not None:
        raise ShowcaseError("This result is already on the showcase.")
    title = " ".join((title or "").split())
    if not title:
        raise ShowcaseError("Give your result a title.")
    if len(title) > MAX_TITLE:
        raise ShowcaseError(f"Keep the title under {MAX_TITLE} characters.")
    item = ShowcaseItem(job_id=job.id, user_id=user.id, function_key=job.function_key, title=title)
    db.session.add(item)
    db.session.flush()
    audit.record("share", "ShowcaseItem", item.id, new={"job_id": job.id, "title": title}, actor=user)
    db.session.commit()
    return item


def withdraw(user, item_id):
    """The owner takes their result off the showcase (its reports go with it)."""
    item = db.session.get(ShowcaseItem, item_id)
    if item is None or item.user_id != user.id:
        raise ShowcaseError("You can withdraw only your own results.")
    audit.record("withdraw", "ShowcaseItem", item.id, old=audit.snapshot(item), actor=user)
    db.session.delete(item)
    db.session.commit()


# --- the public side ---


def _public():
    """Items the public sees: not deleted, creator not banned."""
    return (sa.select(ShowcaseItem).join(User, User.id == ShowcaseItem.user_id)
            .where(ShowcaseItem.is_deleted.is_(False), User.is_banned.is_(False)))


def public_page(page, function_key=None):
    stmt = _public()
    if function_key:
        stmt = stmt.where(ShowcaseItem.function_key == function_key)
    return db.paginate(stmt.order_by(ShowcaseItem.id.desc()), page=page, per_page=PAGE_SIZE, error_out=False)


def is_public(item):
    return item is not None and not item.is_deleted and not item.user.is_banned


def sitemap_items():
    """Items worth indexing: public and not blurred."""
    return db.session.scalars(_public().where(ShowcaseItem.is_blurred.is_(False))
                              .order_by(ShowcaseItem.id.desc()).limit(5000)).all()


def _blurred(data):
    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")
        img.thumbnail((BLUR_EDGE, BLUR_EDGE))
        img = img.filter(ImageFilter.GaussianBlur(radius=max(img.size) / 24))
        out = io.BytesIO()
        img.save(out, "JPEG", quality=70)
    return out.getvalue()


def public_image(item_id):
    """(bytes, content type) of a public item's image — a blurred rendering when the item is blurred; None when
    the public may not see it (deleted, banned creator, missing file)."""
    item = db.session.get(ShowcaseItem, item_id)
    if not is_public(item) or not item.job.output_ref:
        return None
    try:
        data = storage.read(item.job.output_ref)
    except storage.StorageError:
        return None
    if item.is_blurred:
        return _blurred(data), "image/jpeg"
    return data, storage.served_type(item.job.output_content_type)


def staff_image(item_id):
    """(bytes, content type) of any item's original, for the moderation grid."""
    item = db.session.get(ShowcaseItem, item_id)
    if item is None or not item.job.output_ref:
        return None
    try:
        return storage.read(item.job.output_ref), storage.served_type(item.job.output_content_type)
    except storage.StorageError:
        return None


def report(item_id, reason, details, reporter=None, ip=None):
    """File a visitor's report. False when this visitor already has one pending on the item (not counted twice)."""
    item = db.session.get(ShowcaseItem, item_id)
    if not is_public(item):
        raise ShowcaseError("This item is no longer on the showcase.")
    if reason not in dict(REPORT_REASONS):
        raise ShowcaseError("Choose a reason for the report.")
    details = (details or "").strip()
    if len(details) > MAX_DETAILS:
        raise ShowcaseError(f"Keep the details under {MAX_DETAILS} characters.")
    reporter_id = getattr(reporter, "id", None)
    same = ShowcaseReport.reporter_id == reporter_id if reporter_id else ShowcaseReport.reporter_ip == ip
    if db.session.scalar(sa.select(sa.func.count()).select_from(ShowcaseReport).where(
            ShowcaseReport.item_id == item.id, ShowcaseReport.status == "pending", same)):
        return False
    db.session.add(ShowcaseReport(item_id=item.id, reporter_id=reporter_id, reporter_ip=ip, reason=reason,
                                  details=details))
    db.session.execute(sa.update(ShowcaseItem).where(ShowcaseItem.id == item.id)
                       .values(report_count=ShowcaseItem.report_count + 1))
    db.session.commit()
    return True


# --- moderation (staff) ---


def _day(value, end=False):
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except (TypeError, ValueError):
        return None
    return datetime.combine(day, time.max if end else time.min, tzinfo=timezone.utc)


def moderation_filters(args):
    """The grid's filters from a query string; unknown values are dropped."""
    status = args.get("status", "")
    return {
        "status": status if status in ("reported", "blurred", "deleted", "live") else "",
        "function": (args.get("function") or "").strip()[:64],
        "user": (args.get("user") or "").strip()[:254],
        "since": args.get("since", "") if _day(args.get("since")) else "",
        "until": args.get("until", "") if _day(args.get("until")) else "",
    }


def moderation_page(filters, page, queue=False):
    """One page of the grid under the filters (newest first), or of the report queue (most reported first)."""
    stmt = sa.select(ShowcaseItem).join(User, User.id == ShowcaseItem.user_id)
    status = "reported" if queue else filters["status"]
    if status == "reported":
        stmt = stmt.where(ShowcaseItem.report_count > 0)
    elif status == "blurred":
        stmt = stmt.where(ShowcaseItem.is_blurred.is_(True))
    elif status == "deleted":
        stmt = stmt.where(ShowcaseItem.is_deleted.is_(True))
    elif status == "live":
        stmt = stmt.where(ShowcaseItem.is_deleted.is_(False))
    if filters["function"]:
        stmt = stmt.where(ShowcaseItem.function_key == filters["function"])
    if filters["user"]:
        who = filters["user"]
        stmt = stmt.where(User.id == int(who)) if who.isdigit() else stmt.where(
            sa.func.lower(User.email).contains(who.lower(), autoescape=True))
    if filters["since"]:
        stmt = stmt.where(ShowcaseItem.created_at >= _day(filters["since"]))
    if filters["until"]:
        stmt = stmt.where(ShowcaseItem.created_at <= _day(filters["until"], end=True))
    order = (ShowcaseItem.report_count.desc(), ShowcaseItem.id) if queue else (ShowcaseItem.id.desc(),)
    return db.paginate(stmt.order_by(*order), page=page, per_page=MODERATION_PAGE_SIZE, error_out=False)


def pending_reasons(item_ids):
    """{item id: [(reason label, details, created_at)]} of pending reports, for the queue."""
    labels = dict(REPORT_REASONS)
    reasons = {}
    rows = db.session.scalars(sa.select(ShowcaseReport).where(ShowcaseReport.item_id.in_(item_ids),
                                                              ShowcaseReport.status == "pending")
                              .order_by(ShowcaseReport.id))
    for row in rows:
        reasons.setdefault(row.item_id, []).append((labels.get(row.reason, row.reason), row.details,
                                                    row.created_at))
    return reasons


def _items(item_ids):
    ids = sorted({int(i) for i in item_ids})
    if not ids:
        raise ShowcaseError("Select at least one item.")
    items = db.session.scalars(sa.select(ShowcaseItem).where(ShowcaseItem.id.in_(ids))).all()
    if len(items) != len(ids):
        raise ShowcaseError("Some selected items no longer exist; reload the page.")
    return items


def _close_reports(item, actor, status):
    db.session.execute(sa.update(ShowcaseReport).where(ShowcaseReport.item_id == item.id,
                                                       ShowcaseReport.status == "pending")
                       .values(status=status, resolved_by_id=actor.id, resolved_at=utcnow()))
    item.report_count = 0


def moderate(actor, item_ids, action):
    """Apply one action to every selected item, all or nothing: each is checked against the actor and the
    item's creator and audited. Returns how many items changed."""
    if action not in ACTIONS:
        raise ShowcaseError("Unknown moderation action.")
    items = _items(item_ids)
    for item in items:
        try:
            permissions.check_moderation(actor, item.user)
        except permissions.Refused as exc:
            db.session.rollback()
            raise ShowcaseError(f"Item #{item.id}: {exc}") from None
    changed = 0
    for item in items:
        before = {"is_blurred": item.is_blurred, "is_deleted": item.is_deleted, "report_count": item.report_count}
        if action in ("blur", "unblur"):
            item.is_blurred = action == "blur"
        elif action == "delete":
            item.is_deleted, item.deleted_at = True, utcnow()
        elif action == "restore":
            item.is_deleted, item.deleted_at = False, None
        if action in ("blur", "delete"):
            _close_reports(item, actor, "resolved")
        elif action == "dismiss":
            _close_reports(item, actor, "dismissed")
        after = {"is_blurred": item.is_blurred, "is_deleted": item.is_deleted, "report_count": item.report_count}
        if after != before:
            changed += 1
            audit.record(f"moderation_{action}", "ShowcaseItem", item.id, old=before, new=after, actor=actor)
    db.session.commit()
    return changed


def ban_creators(actor, item_ids, reason):
    """Ban the creators of the selected items through the account service (its permission check, audit row,
    ban email and job cancellation). Returns (banned emails, [refusal messages])."""
    reason = (reason or "").strip()
    if not reason:
        raise ShowcaseError("Give a reason for the ban; it is kept with the account.")
    creators = {item.user_id: item.user for item in _items(item_ids)}
    banned, refused = [], []
    for user in creators.values():
        if user.is_banned:
            continue
        try:
            accounts.ban(user, f"Showcase moderation: {reason}", actor)
        except accounts.AccountError as exc:
            db.session.rollback()
            refused.append(f"{user.email}: {exc}")
        else:
            banned.append(user.email)
    return banned, refused
