"""Backups: a populated PostgreSQL database goes through an archive into an empty SQLite database and back into an
empty PostgreSQL one unchanged (same rows, same checksums, logins, secrets, files, fresh ids); restores refuse
what would mix or lose data; the admin page and the CLI work; the daily backup runs through RQ's real scheduler.
"""
import io
import os
import subprocess
import sys
import uuid
import zipfile
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from flask_migrate import downgrade, upgrade
from rq import Queue
from werkzeug.datastructures import MultiDict

from app import create_app
from app.extensions import db
from app.models import (AIFunction, AuditLog, Backup, FunctionFallback, Job, JobLog, Page, Payment, Provider, Setting,
                        User, WebhookEvent)
from app.services import backup, credits, crypto, settings, storage
from app.tasks import make_backup
from tests.conftest import create_database, drop_database
from tests.factories import make_row
from tests.helpers import login, make_user, post
from tests.images import image_bytes
from tests.workers import ROOT, WorkerProcess, wait_for

PASSWORD = "customer-password-1"
PROVIDER_SECRETS = {"api_token": "r8_live_token_0123456789"}
STRIPE_KEY = "sk_live_backup_0123456789"


# --- databases and archives ---


@pytest.fixture
def empty_databases(monkeypatch, tmp_path):
    """Makes apps on new, migrated, empty databases: empty("postgresql") or empty("sqlite")."""
    made = []

    def empty(engine, revision="head", storage_dir=None):
        if engine == "postgresql":
            name = f"neurapix_bak_{uuid.uuid4().hex[:8]}"
            url = create_database(name)
            made.append(name)
        else:
            url = f"sqlite:///{tmp_path / f'restore-{uuid.uuid4().hex[:8]}.db'}"
        monkeypatch.setenv("TEST_DATABASE_URL", url)
        instance = create_app("testing")
        instance.config["STORAGE_DIR"] = str(storage_dir or tmp_path / f"storage-{uuid.uuid4().hex[:8]}")
        with instance.app_context():
            upgrade(revision=revision)
            db.session.remove()
        return instance

    yield empty
    for name in made:
        drop_database(name)


def populate(app):
    """Every table gets rows: the product's data by its own services, anything else by the generic factory."""
    with app.app_context():
        customer = make_user("customer", email="carol@example.com", password=PASSWORD)
        provider = Provider(key="replicate", name="Replicate", config={"timeout": 30, "params": {"b": 1, "a": 2}},
                            secrets=crypto.encrypt_json(PROVIDER_SECRETS))
        spare = Provider(key="local", name="Local", config={})
        db.session.add_all([provider, spare])
        db.session.flush()
        function = AIFunction(key="enhance", name="Enhance", provider_id=provider.id, enabled=True,
                              provider_config={"model": "m", "params": {"z": 1, "y": [1, 2.5, None]}})
        db.session.add(function)
        db.session.flush()
        db.session.add(FunctionFallback(function_id=function.id, position=1, provider_id=spare.id,
                                        provider_config={"operation": "enhance"}))
        input_ref = storage.save(image_bytes(size=(20, 10)), ".png")
        output_ref = storage.save(b"result-bytes", ".png")
        for n in range(3):
            job = Job(user_id=customer.id, function_id=function.id, function_key="enhance", provider_id=provider.id,
                      provider_key="replicate", status="done", input_ref=input_ref if n == 0 else None,
                      output_ref=output_ref if n == 0 else None, input_meta={"width": 20, "format": "PNG"},
                      credits_charged=1, started_at=datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc))
            db.session.add(job)
            db.session.flush()
            db.session.add_all([JobLog(job_id=job.id, message=f"attempt {n} ✓ «ok»", provider_key="replicate",
                                       attempt=1, latency_ms=120), JobLog(job_id=job.id, message="done")])
        db.session.add(Page(slug="about", title="About", html_content="<p>Hi</p>", is_published=True,
                            translations={"de": {"title": "Über uns", "html_content": "<p>Hallo</p>"}}))
        db.session.commit()
        credits.grant(customer.id, 25, kind="grant", reason="welcome")
        db.session.commit()
        payment = make_row(Payment)
        db.session.add(WebhookEvent(provider="stripe", event_id="evt_1", event_type="checkout.session.completed"))
        db.session.commit()
        settings.update({"payments.stripe_secret_key": STRIPE_KEY, "site.name": "Pixel Forge"})
        assert payment.id
        for table in backup.tables():
            if not db.session.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first():
                make_row(next(m.class_ for m in db.Model.registry.mappers if m.local_table is table))
        return customer.id


def counts(app):
    with app.app_context():
        return {t.name: db.session.scalar(sa.select(sa.func.count()).select_from(t)) for t in backup.tables()}


def archive_of(app, path, with_files=True):
    with app.app_context(), open(path, "wb") as out:
        manifest = backup.write_archive(out, with_files=with_files)
        db.session.remove()
    return manifest


def restore_into(app, path, **kwargs):
    with app.app_context():
        try:
            return backup.restore(str(path), **kwargs)
        finally:
            db.session.remove()


def checksums(manifest):
    return {t["name"]: (t["rows"], t["sha256"]) for t in manifest["tables"]}


def can_log_in(instance, email, password):
    client = instance.test_client()
    resp = post(client, "/login", {"email": email, "password": password})
    return resp.status_code == 302 and resp.headers["Location"] == "/account"


# --- the round trip ---


def test_round_trip_postgresql_to_sqlite_to_postgresql(app, empty_databases, tmp_path):
    populate(app)
    before = counts(app)
    assert all(before.values()), f"tables left empty: {[t for t, n in before.items() if not n]}"
    first = archive_of(app, tmp_path / "a.zip")
    assert [t["name"] for t in first["tables"]] == [t.name for t in backup.tables()]  # dependency order
    assert first["files"]["count"] == 2 and first["files"]["missing"] == 0

    lite = empty_databases("sqlite")
    restored = restore_into(lite, tmp_path / "a.zip")
    assert restored["files_restored"] == 2
    assert counts(lite) == before
    second = archive_of(lite, tmp_path / "b.zip")

    pg = empty_databases("postgresql")
    restore_into(pg, tmp_path / "b.zip")
    assert counts(pg) == before
    third = archive_of(pg, tmp_path / "c.zip")

    # Same rows, same bytes: the archive does not depend on the engine it was made from.
    assert checksums(first) == checksums(second) == checksums(third)
    for instance in (lite, pg):
        assert can_log_in(instance, "carol@example.com", PASSWORD)
        assert not can_log_in(instance, "carol@example.com", "wrong-password")
        with instance.app_context():
            provider = db.session.scalars(sa.select(Provider).where(Provider.name == "Replicate")).one()
            assert crypto.decrypt_json(provider.secrets) == PROVIDER_SECRETS
            assert settings.get("payments.stripe_secret_key") == STRIPE_KEY
            page = db.session.scalars(sa.select(Page)).one()
            assert page.translations["de"]["title"] == "Über uns"
            job = db.session.scalars(sa.select(Job).where(Job.input_ref.is_not(None))).one()
            started = job.started_at if job.started_at.tzinfo else job.started_at.replace(tzinfo=timezone.utc)
            assert started == datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
            assert storage.read(job.output_ref) == b"result-bytes"
            assert len(job.logs) == 2
            # New rows get ids past the restored ones.
            newest_user = db.session.scalar(sa.select(sa.func.max(User.id)))
            newest_log = db.session.scalar(sa.select(sa.func.max(JobLog.id)))
            user = make_user("customer", email=f"new-{uuid.uuid4().hex[:6]}@example.com")
            db.session.add(JobLog(job_id=job.id, message="after restore"))
            db.session.commit()
            assert user.id > newest_user
            assert db.session.scalar(sa.select(sa.func.max(JobLog.id))) > newest_log
            db.session.remove()


def test_json_null_and_sql_null_survive(app, empty_databases, tmp_path):
    with app.app_context():
        user = make_user("customer")
        db.session.add(AuditLog(action="x", entity="y", old_values=None, new_values={"k": None}, actor_id=user.id))
        db.session.commit()
    archive_of(app, tmp_path / "a.zip")
    lite = empty_databases("sqlite")
    restore_into(lite, tmp_path / "a.zip")
    with lite.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditLog)
                                 .where(AuditLog.old_values.is_(None))) == 1


# --- refusals: each says what to do and changes nothing ---


def test_restore_refuses_a_database_that_is_not_empty(app, tmp_path):
    populate(app)
    archive_of(app, tmp_path / "a.zip")
    before = counts(app)
    with pytest.raises(backup.BackupError, match=r"not empty .*restore only goes into an empty database"):
        restore_into(app, tmp_path / "a.zip")
    assert counts(app) == before


def test_restore_refuses_another_encryption_key(app, empty_databases, tmp_path):
    populate(app)
    archive_of(app, tmp_path / "a.zip")
    target = empty_databases("sqlite")
    target.config["ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    with pytest.raises(backup.BackupError, match="Set ENCRYPTION_KEY to the old server's value"):
        restore_into(target, tmp_path / "a.zip")
    assert not any(counts(target).values())
    # With the old key listed after a new one, the restore goes through and rotate-keys can follow.
    target.config["ENCRYPTION_KEY"] += "," + app.config["ENCRYPTION_KEY"]
    restore_into(target, tmp_path / "a.zip")
    with target.app_context():
        assert settings.get("payments.stripe_secret_key") == STRIPE_KEY


def test_restore_refuses_another_revision(app, empty_databases, tmp_path):
    populate(app)
    manifest = archive_of(app, tmp_path / "a.zip")
    target = empty_databases("sqlite")
    with target.app_context():
        downgrade(revision="-1")
    with pytest.raises(backup.BackupError) as refused:
        restore_into(target, tmp_path / "a.zip")
    assert f"run `flask db upgrade {manifest['alembic_revision']}`" in str(refused.value)


def _rewrite(source, target, change):
    """Copy an archive member by member, letting `change(name, data)` alter one (the manifest is kept)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for item in old.infolist():
            new.writestr(item, change(item.filename, old.read(item.filename)))


def test_a_corrupted_table_is_named_and_nothing_is_restored(app, empty_databases, tmp_path):
    populate(app)
    archive_of(app, tmp_path / "a.zip")
    _rewrite(tmp_path / "a.zip", tmp_path / "bad.zip",
             lambda name, data: data.replace(b"carol@example.com", b"mallory@example.com")
             if name.endswith("_users.jsonl") else data)
    with pytest.raises(backup.BackupError, match="Checksum mismatch in table users"):
        with app.app_context():
            backup.verify(str(tmp_path / "bad.zip"))
    target = empty_databases("postgresql")
    with pytest.raises(backup.BackupError, match="Checksum mismatch in table users"):
        restore_into(target, tmp_path / "bad.zip")
    assert not any(counts(target).values())


def test_damaged_bytes_are_named_by_table(app, tmp_path):
    populate(app)
    archive_of(app, tmp_path / "a.zip")
    raw = bytearray((tmp_path / "a.zip").read_bytes())
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        member = next(i for i in archive.infolist() if i.filename.endswith("_job_logs.jsonl"))
    # Flip a byte inside the member's compressed data (past its 30-byte local header and name).
    spot = member.header_offset + 30 + len(member.filename) + member.compress_size // 2
    raw[spot] ^= 0xFF
    (tmp_path / "flipped.zip").write_bytes(bytes(raw))
    with app.app_context(), pytest.raises(backup.BackupError, match="job_logs"):
        backup.verify(str(tmp_path / "flipped.zip"))


def test_cli_create_verify_and_refuse(app, tmp_path):
    populate(app)
    runner = app.test_cli_runner()
    made = runner.invoke(args=["backup", "create", "--with-files", "--to", "local"])
    assert made.exit_code == 0, made.output
    with app.app_context():
        row = db.session.scalars(sa.select(Backup)).one()
        assert row.status == "ok" and row.trigger == "cli" and row.with_files and row.row_counts == counts(app)
    listed = runner.invoke(args=["backup", "list"])
    assert row.name in listed.output and " ok " in listed.output
    checked = runner.invoke(args=["backup", "verify", row.ref])
    assert checked.exit_code == 0 and checked.output.startswith("OK:"), checked.output
    refused = runner.invoke(args=["backup", "restore", row.ref])
    assert refused.exit_code == 1 and "not empty" in refused.output
    missing = runner.invoke(args=["backup", "verify", str(tmp_path / "nope.zip")])
    assert missing.exit_code == 1 and "No archive at" in missing.output


# --- the admin page ---


def test_admin_makes_downloads_and_deletes_a_backup(app, client):
    with app.app_context():
        login(client, make_user("admin"))
        customer_id = make_user("customer").id
    resp = post(client, "/admin/backups/new/", {"with_files": "y", "destination": "disk"})
    assert resp.status_code == 302
    with app.app_context():
        row = db.session.scalars(sa.select(Backup)).one()
        assert row.status == "queued" and row.with_files and row.trigger == "manual"
        from app.services import queue

        assert Queue(backup.QUEUE_NAME, connection=queue.redis_connection(app)).count == 1
        backup_id = row.id
    with app.app_context():
        make_backup(backup_id)  # what the worker runs
        row = db.session.get(Backup, backup_id)
        assert row.status == "ok" and row.row_counts["users"] == 2
        path = os.path.join(app.config["STORAGE_DIR"], row.ref.split(":", 1)[1])
        name = row.name
    listing = client.get("/admin/backups/").get_data(as_text=True)
    assert name in listing and "KB" in listing and "safeConfirm" not in listing

    download = client.get(f"/admin/backups/download/?id={backup_id}")
    assert download.status_code == 200 and download.is_streamed
    assert download.headers["Content-Disposition"] == f'attachment; filename="{name}"'
    body = download.get_data()
    assert body == open(path, "rb").read()
    assert zipfile.ZipFile(io.BytesIO(body)).read("manifest.json")

    confirm = client.get(f"/admin/backups/delete/confirm/?id={backup_id}")
    assert confirm.status_code == 200 and "Delete the backup" in confirm.get_data(as_text=True)
    assert post(client, "/admin/backups/delete/", {"id": backup_id, "url": "/admin/backups/"}).status_code == 302
    with app.app_context():
        assert db.session.get(Backup, backup_id) is None
        assert not os.path.exists(path)
        actions = [a for (a,) in db.session.execute(sa.select(AuditLog.action).where(AuditLog.entity == "Backup")
                                                    .order_by(AuditLog.id))]
        assert actions == ["create", "download", "delete"]
        assert db.session.get(User, customer_id)


@pytest.mark.parametrize("role", ["support", "viewer", "customer"])
def test_only_admins_reach_backups(app, client, role):
    with app.app_context():
        made = backup.make_now()
        login(client, make_user(role))
        backup_id = made.id
    assert client.get(f"/admin/backups/download/?id={backup_id}").status_code == 403
    assert client.get(f"/admin/backups/delete/confirm/?id={backup_id}").status_code == 403
    assert post(client, "/admin/backups/new/", {"destination": "disk"}).status_code == 403
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Backup)) == 1


def test_a_failed_backup_shows_on_the_admin_dashboard(app, client, s3):
    endpoint, s3_client, bucket = s3
    with app.app_context():
        use_s3(endpoint, "no-such-bucket-here")
        failed = backup.make_now(destination="s3")
        assert failed.status == "failed" and "no-such-bucket-here" in failed.error
        name = failed.name
        admin, support = make_user("admin"), make_user("support")
    login(client, admin)
    page = client.get("/admin/").get_data(as_text=True)
    assert "The last backup" in page and name in page
    login(client, support)
    assert "The last backup" not in client.get("/admin/").get_data(as_text=True)


# --- S3 and the daily schedule ---


@pytest.fixture
def s3(s3_endpoint, s3_bucket):
    return (s3_endpoint, *s3_bucket)


def use_s3(endpoint, bucket, **extra):
    settings.update({"storage.s3_bucket": bucket, "storage.s3_endpoint_url": endpoint,
                     "storage.s3_region": "us-east-1", "storage.s3_access_key_id": "testing",
                     "storage.s3_secret_access_key": "testing", **extra})


def keys(s3_client, bucket):
    return sorted(o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", []))


class SchedulerProcess(WorkerProcess):
    def start(self):
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "scheduler.py")], cwd=ROOT, env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        return self


def scheduled(app):
    with app.app_context():
        rows = db.session.scalars(sa.select(Backup).where(Backup.trigger == "schedule")
                                  .order_by(Backup.created_at)).all()
        db.session.remove()
        return [(r.schedule_slot, r.status, r.ref) for r in rows]


def test_daily_backup_runs_through_the_real_scheduler_and_keeps_the_last_n(app, s3, tmp_path):
    endpoint, s3_client, bucket = s3
    today = datetime.now(timezone.utc)
    with app.app_context():
        populate(app)
        use_s3(endpoint, bucket, **{"backups.enabled": True, "backups.time_of_day": "00:00", "backups.keep": 2,
                                    "backups.destination": "s3"})
        # Two earlier days' backups, made by the same tick the scheduler enqueues.
        for days_ago in (3, 2):
            made = backup.run_due(now=today - timedelta(days=days_ago))
            assert made.status == "ok", made.error
        assert backup.run_due(now=today - timedelta(days=2)) is None  # one per day, however many ticks
        manual = backup.make_now(destination="s3", trigger="manual")
        db.session.remove()
    oldest_ref = scheduled(app)[0][2]

    with WorkerProcess(), SchedulerProcess(BACKUP_TICK_SECONDS=1):
        wait_for(lambda: any(slot == today.date().isoformat() and status == "ok"
                             for slot, status, _ref in scheduled(app)), timeout=60, what="today's backup")
    rows = scheduled(app)
    assert [slot for slot, _s, _r in rows] == [(today - timedelta(days=2)).date().isoformat(),
                                               today.date().isoformat()]
    stored = keys(s3_client, bucket)
    assert oldest_ref.split("/", 1)[1] not in stored
    assert all(ref.split("/", 1)[1] in stored for _slot, _s, ref in rows)
    assert manual.ref.split("/", 1)[1] in stored  # an archive made by hand is not the schedule's to prune

    # The newest archive in the bucket restores (straight from its S3 ref) and verifies.
    with app.app_context():
        manifest = backup.verify(rows[-1][2])
        assert manifest["tables"][0]["rows"] >= 1


def test_a_failed_daily_backup_prunes_nothing(app, s3):
    endpoint, s3_client, bucket = s3
    now = datetime.now(timezone.utc)
    with app.app_context():
        use_s3(endpoint, bucket, **{"backups.enabled": True, "backups.time_of_day": "00:00", "backups.keep": 1,
                                    "backups.destination": "s3"})
        assert backup.run_due(now=now - timedelta(days=1)).status == "ok"
        settings.update({"storage.s3_bucket": "gone-bucket"})
        assert backup.run_due(now=now).status == "failed"
        assert len(keys(s3_client, bucket)) == 1
        assert backup.last_failure().schedule_slot == now.date().isoformat()


def test_nothing_runs_before_the_time_of_day_or_when_disabled(app):
    with app.app_context():
        settings.update({"backups.time_of_day": "05:00"})
        assert backup.run_due(now=datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)) is None  # disabled
        settings.update({"backups.enabled": True})
        assert backup.run_due(now=datetime(2026, 1, 1, 4, 59, tzinfo=timezone.utc)) is None
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Backup)) == 0


def test_settings_refuse_s3_backups_without_a_bucket(app):
    with app.app_context():
        form = MultiDict({"backups.destination": "s3"})
        with pytest.raises(settings.SettingError) as refused:
            settings.parse_form(form)
        assert "backups.destination" in refused.value.errors


def test_stored_files_missing_from_storage_do_not_fail_the_backup(app, tmp_path):
    with app.app_context():
        user = make_user("customer")
        ref = storage.save(b"x", ".png")
        db.session.add(Job(user_id=user.id, function_key="enhance", input_ref=ref, output_ref="fs:gone/none.png"))
        db.session.commit()
    manifest = archive_of(app, tmp_path / "a.zip")
    assert manifest["files"]["count"] == 1 and manifest["files"]["missing"] == 1
    with app.app_context():
        backup.verify(str(tmp_path / "a.zip"))


def test_backup_excludes_its_own_records_and_a_secret_stays_ciphertext(app, tmp_path):
    with app.app_context():
        settings.update({"payments.stripe_secret_key": STRIPE_KEY})
        backup.make_now()
    archive_of(app, tmp_path / "a.zip")
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        names = archive.namelist()
        text = b"".join(archive.read(n) for n in names)
    assert not any(n.endswith("_backups.jsonl") for n in names)
    assert STRIPE_KEY.encode() not in text
    assert app.config["ENCRYPTION_KEY"].split(",")[0].encode() not in text
    with app.app_context():
        assert db.session.get(Setting, "payments.stripe_secret_key").value.encode() in text


def test_files_on_s3_are_put_back_with_the_restored_storage_settings(app, empty_databases, s3, tmp_path):
    endpoint, s3_client, bucket = s3
    with app.app_context():
        use_s3(endpoint, bucket, **{"storage.backend": "s3"})
        user = make_user("customer")
        ref = storage.save(b"an output on s3", ".png")
        db.session.add(Job(user_id=user.id, function_key="enhance", output_ref=ref))
        db.session.commit()
    archive_of(app, tmp_path / "a.zip")
    key = ref.split("/", 1)[1]
    s3_client.delete_object(Bucket=bucket, Key=key)
    # The new server knows nothing of S3 until the archive's settings are in its database.
    restored = restore_into(empty_databases("sqlite"), tmp_path / "a.zip")
    assert restored["files_restored"] == 1 and restored["files_failed"] == []
    assert s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"an output on s3"


def test_memory_stays_flat_however_many_rows(app, empty_databases, tmp_path):
    """Four times the rows, about the same peak: rows stream through in batches, never held all at once."""
    import tracemalloc

    with app.app_context():
        user = make_user("customer")

    def peaks(rows, name):
        with app.app_context():
            db.session.execute(sa.text("DELETE FROM jobs"))
            db.session.execute(sa.text(
                "INSERT INTO jobs (user_id, function_key, status, input_meta, credits_charged, attempts, created_at) "
                "SELECT :user, 'enhance', 'done', CAST('{\"width\": 20, \"format\": \"PNG\"}' AS jsonb), 1, 1, "
                "now() FROM generate_series(1, :rows)"), {"user": user.id, "rows": rows})
            db.session.commit()
        target = empty_databases("postgresql")
        tracemalloc.start()
        try:
            archive_of(app, tmp_path / name, with_files=False)
            backup_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            restore_into(target, tmp_path / name)
            restore_peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert counts(target)["jobs"] == rows
        return backup_peak, restore_peak

    small_backup, small_restore = peaks(10_000, "small.zip")
    large_backup, large_restore = peaks(40_000, "large.zip")
    # Rows held at once would grow the peak about fourfold; batches of two thousand keep it where it was.
    assert large_backup < small_backup * 1.3, (small_backup, large_backup)
    assert large_restore < small_restore * 1.3, (small_restore, large_restore)
    assert large_backup < 40_000_000 and large_restore < 40_000_000


def test_an_archive_whose_rows_break_a_rule_restores_nothing(app, empty_databases, tmp_path):
    """A well-formed archive (checksums right) holding two emails equal but for case: the unique index on
    lower(email), built again after the load, refuses it and the whole restore rolls back."""
    import hashlib
    import json

    populate(app)
    archive_of(app, tmp_path / "a.zip", with_files=False)
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        manifest = json.loads(archive.read("manifest.json"))
    users = next(t for t in manifest["tables"] if t["name"] == "users")

    def twin(name, data):
        if name == users["path"]:
            header, first = data.split(b"\n")[:2]
            row = json.loads(first)
            row[0] += 1000
            row[1] = row[1].upper()
            data += json.dumps(row, separators=(",", ":")).encode() + b"\n"
            users.update(rows=users["rows"] + 1, sha256=hashlib.sha256(data).hexdigest())
        return data

    _rewrite(tmp_path / "a.zip", tmp_path / "tmp.zip", twin)
    _rewrite(tmp_path / "tmp.zip", tmp_path / "twin.zip",
             lambda name, data: json.dumps(manifest).encode() if name == "manifest.json" else data)
    with app.app_context():
        backup.verify(str(tmp_path / "twin.zip"))  # intact as a file
    target = empty_databases("postgresql")
    with pytest.raises(backup.BackupError, match="break a rule of this database"):
        restore_into(target, tmp_path / "twin.zip")
    assert not any(counts(target).values())
