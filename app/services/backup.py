"""Portable backups: one zip archive (manifest, one JSON Lines file per table, optionally the stored files), made
and restored as streams into an empty SQLite or PostgreSQL database; listed, verified, deleted, scheduled, pruned.

Every table of the metadata is carried, in dependency order, so tables added later are backed up without a change
here: a header line naming the columns, then one JSON array of values per row. Values are written portably
(datetimes ISO in UTC, Decimal as text, bytes base64, JSON as JSON) and canonically (rows by primary key, object
keys sorted, no spaces), so the same rows give the same checksums whichever engine they were read from.
Secrets stay the ciphertext they are in the database; the manifest names the key that reads them by fingerprint.
"""
import base64
import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import threading
import uuid
import zipfile
import zlib
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from queue import Empty, Queue as Handoff

import orjson
import psycopg2.extras
import sqlalchemy as sa
from alembic.migration import MigrationContext
from flask import current_app
from sqlalchemy.dialects.postgresql import JSONB

from app import __version__
from app.extensions import db
from app.models import Backup
from app.models.types import utcnow
from app.services import audit, settings, storage

log = logging.getLogger("neurapix.backup")

FORMAT = "neurapix-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FILES_INDEX = "files.jsonl"
# This server's record of its own archives is not data to carry elsewhere: its refs point at this server.
EXCLUDED_TABLES = frozenset({Backup.__tablename__})
# Columns holding storage refs of files a backup "with files" carries (job inputs and outputs).
FILE_REF_COLUMNS = (("jobs", "input_ref"), ("jobs", "output_ref"))
BATCH_ROWS = 2000
CHUNK = 1 << 20
QUEUE_NAME = "neurapix-low"
TASK_TIMEOUT_SECONDS = 6 * 3600
# Where archives are stored, named as the storage setting names its backends.
DESTINATIONS = ("disk", "s3")


class BackupError(RuntimeError):
    """A backup, verification or restore that cannot go on; the message says what happened and what to do."""


# --- what is carried ---


def tables():
    """The tables an archive holds, parents before children."""
    return [t for t in db.metadata.sorted_tables if t.name not in EXCLUDED_TABLES]


def key_fingerprint(key):
    """Names a Fernet key without revealing it: a hash of the key, never the key."""
    return hashlib.sha256(b"neurapix-encryption-key:" + key.strip().encode()).hexdigest()[:32]


def _configured_keys():
    return [k.strip() for k in (current_app.config["ENCRYPTION_KEY"] or "").split(",") if k.strip()]


def _utc_iso(value):
    # SQLite hands back naive datetimes for columns the app only ever fills with UTC.
    value = value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return value.isoformat(timespec="microseconds")


def _naive_iso(value):
    return value.isoformat(timespec="microseconds")


def _selected(column, dialect):
    """What to read for a column: PostgreSQL formats datetimes itself, exactly as _utc_iso/_naive_iso would
    (parsing them into Python only to print them again is most of a backup's time)."""
    if dialect == "postgresql" and isinstance(column.type, sa.DateTime):
        if column.type.timezone:
            return sa.func.to_char(column.op("AT TIME ZONE")(sa.literal("UTC")),
                                   sa.literal('YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')).label(column.name)
        return sa.func.to_char(column, sa.literal('YYYY-MM-DD"T"HH24:MI:SS.US')).label(column.name)
    return column


def _encoder(column, dialect):
    """JSON-ready value of a column's value as read, or None when it is one already."""
    kind = column.type
    if isinstance(kind, sa.DateTime):
        if dialect == "postgresql":
            return None
        return _utc_iso if kind.timezone else _naive_iso
    if isinstance(kind, (sa.Date, sa.Time)):
        return lambda v: v.isoformat()
    if isinstance(kind, sa.Interval):
        return lambda v: v.total_seconds()
    if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float):
        exponent = Decimal(1).scaleb(-kind.scale) if kind.scale is not None else None
        return lambda v: str(Decimal(v).quantize(exponent) if exponent is not None else Decimal(v))
    if isinstance(kind, sa.LargeBinary):
        return lambda v: base64.b64encode(v).decode()
    if isinstance(kind, sa.Uuid):
        return str
    return None


def _decoder(column):
    """The Python value to bind for a column from its JSON form, or None when the JSON value binds as is."""
    kind = column.type
    if isinstance(kind, sa.DateTime):
        return datetime.fromisoformat
    if isinstance(kind, sa.Date):
        return date.fromisoformat
    if isinstance(kind, sa.Time):
        return time.fromisoformat
    if isinstance(kind, sa.Interval):
        return lambda v: timedelta(seconds=v)
    if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float):
        return Decimal
    if isinstance(kind, sa.LargeBinary):
        return base64.b64decode
    if isinstance(kind, sa.Uuid):
        return uuid.UUID if kind.as_uuid else None
    return None


def _order(column, dialect):
    # Text keys sort by bytes on both engines, so the same rows give the same file (and checksum) anywhere.
    if isinstance(column.type, sa.String) and dialect == "postgresql":
        return column.collate("C")
    return column


def _line(record):
    """One canonical JSON line (sorted keys at every depth, no spaces, UTF-8) as bytes."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


# --- writing an archive ---


def _dump_table(conn, archive, table, index):
    """One table as JSON Lines: a header {"columns": [...]}, then one array of values per row, by primary key."""
    columns, dialect = list(table.columns), conn.dialect.name
    encoders = [(i, encode) for i, c in enumerate(columns) if (encode := _encoder(c, dialect))]
    keys = list(table.primary_key.columns) or columns
    path = f"tables/{index:03d}_{table.name}.jsonl"
    digest, rows, lines = hashlib.sha256(), 0, [_line({"columns": [c.name for c in columns]})]
    result = conn.execution_options(stream_results=True, yield_per=BATCH_ROWS).execute(
        sa.select(*(_selected(c, dialect) for c in columns)).order_by(*(_order(c, dialect) for c in keys)))
    batches = _read_ahead(result) if dialect == "postgresql" else result.partitions(BATCH_ROWS)
    with archive.open(path, "w", force_zip64=True) as out, _Writer(out, digest) as writer:
        for batch in batches:
            for row in batch:
                values = list(row)
                for i, encode in encoders:
                    if values[i] is not None:
                        values[i] = encode(values[i])
                lines.append(_line(values))
            rows += writer.put(lines)
        rows += writer.put(lines) - 1  # the header is no row
    return {"name": table.name, "path": path, "rows": rows, "sha256": digest.hexdigest()}


class _Writer:
    """Hashes, compresses and writes chunks of lines on a thread of its own (zlib and hashlib release the GIL),
    while the caller encodes the next ones. At most two chunks wait in memory."""

    def __init__(self, out, digest):
        self.out, self.digest, self.error = out, digest, None
        self.handoff = Handoff(maxsize=2)
        self.thread = threading.Thread(target=self._drain, name="backup-writer", daemon=True)

    def _drain(self):
        while (chunk := self.handoff.get()) is not None:
            if self.error is None:
                try:
                    self.digest.update(chunk)
                    self.out.write(chunk)
                except Exception as exc:
                    self.error = exc

    def put(self, lines):
        """Queue the lines (then cleared) for writing; returns how many there were."""
        if self.error is not None:
            raise self.error
        count = len(lines)
        if count:
            self.handoff.put(b"\n".join(lines) + b"\n")
            lines.clear()
        return count

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.handoff.put(None)
        self.thread.join()
        if self.error is not None and exc[0] is None:
            raise self.error


def _read_ahead(result):
    """The result's batches, fetched one ahead by a thread: PostgreSQL makes the next batch while this one is
    encoded and compressed (the driver releases the GIL while it waits). At most one batch waits in memory."""
    handoff, stop = Handoff(maxsize=1), threading.Event()

    def produce():
        try:
            for batch in result.partitions(BATCH_ROWS):
                if stop.is_set():
                    return
                handoff.put(batch)
            handoff.put(None)
        except Exception as exc:
            handoff.put(exc)

    thread = threading.Thread(target=produce, name="backup-read-ahead", daemon=True)
    thread.start()
    try:
        while (batch := handoff.get()) is not None:
            if isinstance(batch, Exception):
                raise batch
            yield batch
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting to hand over, so the connection is free again
            with contextlib.suppress(Empty):
                handoff.get(timeout=0.1)


def _dump_files(conn, archive):
    """Each stored input/output the jobs refer to, plus an index of them (ref, path, size, sha256)."""
    digest, count, missing, total = hashlib.sha256(), 0, 0, 0
    # The index goes to a temp file first: a zip takes one member at a time, and the files come in between.
    with tempfile.TemporaryFile() as index:
        for table_name, column_name in FILE_REF_COLUMNS:
            table = db.metadata.tables[table_name]
            column = table.c[column_name]
            refs = conn.execution_options(stream_results=True, yield_per=BATCH_ROWS).scalars(
                sa.select(column).where(column.is_not(None)).order_by(*table.primary_key.columns))
            for ref in refs:
                try:
                    data = storage.read(ref)
                except storage.StorageError as exc:
                    # One lost file must not cost the owner the whole backup; the index says which.
                    log.warning("backup: file %s not carried: %s", ref, exc)
                    entry = {"ref": ref, "missing": True}
                    missing += 1
                else:
                    count += 1
                    path = f"files/{count:08d}"
                    archive.writestr(zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0)), data,
                                     compress_type=zipfile.ZIP_STORED)
                    entry = {"ref": ref, "path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                    total += len(data)
                line = _line(entry) + b"\n"
                digest.update(line)
                index.write(line)
        index.seek(0)
        with archive.open(FILES_INDEX, "w", force_zip64=True) as out:
            shutil.copyfileobj(index, out, CHUNK)
    return {"path": FILES_INDEX, "count": count, "missing": missing, "bytes": total, "sha256": digest.hexdigest()}


def write_archive(fileobj, with_files=False):
    """Write a whole archive to a binary file object, one row at a time; returns its manifest."""
    keys = _configured_keys()
    if not keys:
        raise BackupError("ENCRYPTION_KEY is not set: set it before making a backup.")
    engine = db.engine
    options = {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}
    # One transaction for every table: on PostgreSQL the archive is one consistent snapshot.
    with engine.connect().execution_options(**options) as conn, conn.begin():
        if engine.dialect.name == "postgresql":
            # JSONB parsed by orjson on this connection: the same values, at a fraction of the cost.
            psycopg2.extras.register_default_jsonb(conn.connection.dbapi_connection, loads=orjson.loads)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "app_version": __version__,
            "alembic_revision": MigrationContext.configure(conn).get_current_revision(),
            "created_at": utcnow().isoformat(),
            "source_engine": engine.dialect.name,
            "encryption_key_fingerprint": key_fingerprint(keys[0]),
            "tables": [],
            "files": None,
        }
        with zipfile.ZipFile(fileobj, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1,
                             allowZip64=True) as archive:
            for index, table in enumerate(tables(), start=1):
                manifest["tables"].append(_dump_table(conn, archive, table, index))
            if with_files:
                manifest["files"] = _dump_files(conn, archive)
            archive.writestr(MANIFEST, json.dumps(manifest, indent=2))
    return manifest


# --- reading an archive ---


@contextlib.contextmanager
def open_archive(source):
    """A ZipFile for a local path or a stored ref (fs:…, s3:…); a stored one is first copied to a temp file."""
    if os.path.isfile(source):
        path, temporary = source, None
    elif source.split(":", 1)[0] in ("fs", "s3"):
        temporary = tempfile.NamedTemporaryFile(prefix="neurapix-restore-", suffix=".zip", delete=False)
        try:
            with contextlib.closing(storage.open_ref(source)) as remote, temporary:
                shutil.copyfileobj(remote, temporary, CHUNK)
        except storage.StorageError as exc:
            os.unlink(temporary.name)
            raise BackupError(f"Cannot read the archive {source}: {exc}") from None
        path = temporary.name
    else:
        raise BackupError(f"No archive at {source}: give the path of a backup file, or a stored ref as "
                          f"`flask backup list` shows it (fs:backups/… or s3:bucket/backups/…).")
    try:
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise BackupError(f"{source} is not a readable backup archive ({exc}).") from None
        with archive:
            yield archive
    finally:
        if temporary is not None:
            os.unlink(temporary.name)


def read_manifest(archive):
    try:
        manifest = json.loads(archive.read(MANIFEST))
    except (KeyError, ValueError, zipfile.BadZipFile, zlib.error) as exc:
        raise BackupError(f"The archive has no readable manifest ({exc}): it is not a complete Neurapix backup.") \
            from None
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError("This file is not a Neurapix backup archive of a format this version reads.")
    return manifest


def _lines(archive, path, what):
    """The member's lines as stored; a damaged member raises a BackupError naming `what`."""
    try:
        with archive.open(path) as member:
            yield from member
    except KeyError:
        raise BackupError(f"The archive is damaged: {what} is missing from it. Use another archive.") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise BackupError(f"The archive is damaged in {what} ({exc}): checksum check failed. "
                          f"Use another archive.") from None


def _checksum_error(entry, what, rows, digest):
    return BackupError(
        f"Checksum mismatch in {what}: the archive is corrupted (manifest: {entry.get('rows', '?')} lines, "
        f"sha256 {entry['sha256'][:12]}…; found: {rows} lines, sha256 {digest[:12]}…). Nothing was restored "
        f"from it; use another archive.")


def _matches(entry, rows, digest):
    return entry.get("rows", rows) == rows and entry["sha256"] == digest


def _check_member(archive, entry, what, header=False):
    digest, rows = hashlib.sha256(), -1 if header else 0
    for line in _lines(archive, entry["path"], what):
        digest.update(line)
        rows += 1
    if not _matches(entry, rows, digest.hexdigest()):
        raise _checksum_error(entry, what, rows, digest.hexdigest())


def verify(source):
    """Check every table's and file's checksum; returns the manifest or raises BackupError naming the damage."""
    with open_archive(source) as archive:
        manifest = read_manifest(archive)
        for entry in manifest["tables"]:
            _check_member(archive, entry, f"table {entry['name']}", header=True)
        if manifest["files"]:
            _check_member(archive, manifest["files"], "the stored files' index")
            for line in _lines(archive, FILES_INDEX, "the stored files' index"):
                item = json.loads(line)
                if not item.get("missing"):
                    _check_file(archive, item)
        return manifest


def _check_file(archive, item):
    try:
        data = archive.read(item["path"])
    except (KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise BackupError(f"The archive is damaged in stored file {item['ref']} ({exc}).") from None
    if hashlib.sha256(data).hexdigest() != item["sha256"]:
        raise BackupError(f"Checksum mismatch in stored file {item['ref']}: the archive is corrupted.")
    return data


# --- restoring ---


def _bind_type(column):
    # A JSON column's SQL NULL must stay NULL (not the JSON value null), as it was in the source.
    if isinstance(column.type, sa.JSON):
        return sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
    return column.type


def _check_target(manifest, conn):
    """Refuse a restore that would mix data or lose secrets: same revision, empty tables, a key that reads them."""
    fingerprint = manifest["encryption_key_fingerprint"]
    if fingerprint not in {key_fingerprint(k) for k in _configured_keys()}:
        raise BackupError(
            f"The archive's secrets were encrypted with the key whose fingerprint is {fingerprint}, and this "
            f"server's ENCRYPTION_KEY does not hold it. Set ENCRYPTION_KEY to the old server's value (or to "
            f"NEW_KEY,OLD_KEY and run `flask rotate-keys` after the restore), then restore again.")
    wanted = manifest["alembic_revision"]
    current = MigrationContext.configure(conn).get_current_revision()
    if current != wanted:
        raise BackupError(
            f"This database is at revision {current or 'none (no tables yet)'} and the archive at {wanted}: run "
            f"`flask db upgrade {wanted}` on an empty database (with the app version that made the archive, "
            f"{manifest['app_version']}, or newer), then restore again.")
    busy = [t.name for t in tables() if conn.execute(sa.select(sa.literal(1)).select_from(t).limit(1)).first()]
    if busy:
        raise BackupError(
            f"This database is not empty (rows in {', '.join(busy[:5])}{'…' if len(busy) > 5 else ''}): a restore "
            f"only goes into an empty database. Create a new one, run `flask db upgrade {wanted}` on it, point "
            f"DATABASE_URL at it and restore again.")


class _Null(float):
    """SQL NULL for csv.writer: a "number" (so QUOTE_NONNUMERIC leaves it unquoted) that prints as nothing.

    COPY … CSV reads an unquoted empty field as NULL and a quoted one ("") as an empty string, which is how
    Python 3.11's csv module can tell the two apart.
    """

    def __str__(self):
        return ""

    __repr__ = __str__


NULL = _Null()


def _copy_value(column):
    """How a column's JSON value goes into COPY … CSV, or None when csv.writer writes it right as it is."""
    kind = column.type
    if isinstance(kind, sa.JSON):
        return lambda v: orjson.dumps(v).decode()
    if isinstance(kind, sa.LargeBinary):
        return lambda v: "\\x" + base64.b64decode(v).hex()
    return None


def _inserter(conn, table, names):
    """A function that writes a batch of rows (lists of values in `names` order) into the table, in the
    connection's transaction.

    PostgreSQL takes them through COPY (what pg_restore uses, several times faster than INSERTs); other
    engines through executemany with the values decoded back into Python.
    """
    by_name = {c.name: c for c in table.columns}
    columns = [by_name[name] for name in names]
    if conn.dialect.name == "postgresql":
        converters = [(i, convert) for i, c in enumerate(columns) if (convert := _copy_value(c))]
        quote = conn.dialect.identifier_preparer.quote
        sql = f"COPY {quote(table.name)} ({', '.join(quote(n) for n in names)}) FROM STDIN WITH (FORMAT csv)"
        cursor = conn.connection.dbapi_connection.cursor()

        def copy(rows):
            for values in rows:
                for i, convert in converters:
                    if values[i] is not None:
                        values[i] = convert(values[i])
            buffer = io.StringIO()
            csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n").writerows(
                [NULL if v is None else v for v in values] for values in rows)
            buffer.seek(0)
            cursor.copy_expert(sql, buffer)

        return copy
    decoders = [(i, decode) for i, c in enumerate(columns) if (decode := _decoder(c))]
    stmt = table.insert().values({c.name: sa.bindparam(c.name, type_=_bind_type(c)) for c in columns})

    def insert(rows):
        for values in rows:
            for i, decode in decoders:
                if values[i] is not None:
                    values[i] = decode(values[i])
        conn.execute(stmt, [dict(zip(names, values)) for values in rows])

    return insert


def _load_table(conn, archive, entry):
    table = db.metadata.tables.get(entry["name"])
    if table is None or entry["name"] in EXCLUDED_TABLES:
        raise BackupError(f"The archive holds a table this version does not know ({entry['name']}).")
    what = f"table {entry['name']}"
    digest, rows, batch = hashlib.sha256(), 0, []
    lines = _lines(archive, entry["path"], what)
    try:
        header = next(lines, b"")
        digest.update(header)
        names = orjson.loads(header)["columns"]
        if set(names) != {c.name for c in table.columns}:
            raise BackupError(f"The archive's {what} has other columns than this database's: restore into a "
                              f"database at the archive's revision ({entry['name']}).")
        write = _inserter(conn, table, names)
        for line in lines:
            digest.update(line)
            rows += 1
            batch.append(orjson.loads(line))
            if len(batch) >= BATCH_ROWS:
                write(batch)
                batch.clear()
        if batch:
            write(batch)
    except (ValueError, TypeError, KeyError, IndexError, sa.exc.DBAPIError, conn.dialect.loaded_dbapi.Error) as exc:
        # Damage often surfaces as bad JSON or a refused row before the end: the checksum says which it was.
        for line in lines:
            digest.update(line)
            rows += 1
        if not _matches(entry, rows, digest.hexdigest()):
            raise _checksum_error(entry, what, rows, digest.hexdigest()) from None
        raise BackupError(f"The database refused a row of {what}: {str(exc).splitlines()[0][:300]}") from None
    if not _matches(entry, rows, digest.hexdigest()):
        raise _checksum_error(entry, what, rows, digest.hexdigest())


def _deferred_checks(conn):
    """PostgreSQL: drop the tables' secondary indexes and foreign keys; returns the statements that put them back.

    Only what the models declare is touched (tests/test_migrations.py keeps models and migrations identical).
    Primary keys and unique constraints stay; unique indexes refuse duplicates when they are built again.
    """
    if conn.dialect.name != "postgresql":
        return []
    restore = []
    for table in tables():
        for index in sorted(table.indexes, key=lambda ix: ix.name):
            conn.execute(sa.schema.DropIndex(index))
            restore.append(sa.schema.CreateIndex(index))
        for fk in sorted(table.foreign_key_constraints, key=lambda fk: fk.name):
            conn.execute(sa.schema.DropConstraint(fk))
            restore.append(sa.schema.AddConstraint(fk))
    return restore


def _reset_sequences(conn):
    """PostgreSQL: move every id sequence past the restored ids, so new rows get fresh ones."""
    quote = conn.dialect.identifier_preparer.quote
    for table in tables():
        for column in table.primary_key.columns:
            if not isinstance(column.type, sa.Integer):
                continue
            sequence = conn.scalar(sa.text("SELECT pg_get_serial_sequence(:table, :column)"),
                                   {"table": quote(table.name), "column": column.name})
            if sequence:
                conn.execute(sa.text(f"SELECT setval(:sequence, COALESCE((SELECT MAX({quote(column.name)}) "
                                     f"FROM {quote(table.name)}), 0) + 1, false)"), {"sequence": sequence})


def _restore_files(archive):
    """Put each carried file back under its ref; returns (restored, [(ref, why) for files that could not be])."""
    restored, failed = 0, []
    for line in _lines(archive, FILES_INDEX, "the stored files' index"):
        item = json.loads(line)
        if item.get("missing"):
            continue
        try:
            storage.write_ref(item["ref"], _check_file(archive, item))
        except (storage.StorageError, BackupError) as exc:
            log.error("restore: stored file %s not put back: %s", item["ref"], exc)
            failed.append((item["ref"], str(exc)))
        else:
            restored += 1
    return restored, failed


def restore(source, with_files=True):
    """Load an archive into this (empty, migrated) database in one transaction: all of it or nothing.

    Stored files follow once the rows are committed (an S3 file needs the restored storage settings); a file
    that cannot be put back is reported in manifest["files_failed"], the database stays restored.
    """
    with open_archive(source) as archive:
        manifest = read_manifest(archive)
        with db.engine.begin() as conn:
            _check_target(manifest, conn)
            # As pg_restore does: load into bare tables, then build indexes and check foreign keys once each,
            # which is several times faster than keeping them current row by row. Same transaction: all or none.
            deferred = _deferred_checks(conn)
            for entry in manifest["tables"]:
                _load_table(conn, archive, entry)
            try:
                for statement in deferred:
                    conn.execute(statement)
            except sa.exc.DBAPIError as exc:
                raise BackupError(f"The archive's rows break a rule of this database, so nothing was restored: "
                                  f"{str(exc.orig).splitlines()[0][:300]}") from None
            if conn.dialect.name == "postgresql":
                _reset_sequences(conn)
            if manifest["files"] and with_files:
                _check_member(archive, manifest["files"], "the stored files' index")
        log.info("restore: %s rows from %s (revision %s)", sum(t["rows"] for t in manifest["tables"]), source,
                 manifest["alembic_revision"])
        if manifest["files"] and with_files:
            db.session.remove()  # read the restored settings, not what this session saw before
            manifest["files_restored"], manifest["files_failed"] = _restore_files(archive)
    return manifest


# --- backups of this server: request, make, list, delete, schedule, prune ---


def human_size(n):
    """An archive's size as a person reads it: 812 B, 4.4 KB, 1.2 GB."""
    if n is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _archive_name(now):
    return f"neurapix-backup-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}.zip"


def request_backup(actor=None, with_files=False, destination=None, trigger="manual"):
    """Record a backup to make, audited; the caller makes it now (run) or hands it to a worker (start)."""
    destination = destination or settings.get("backups.destination")
    if destination not in DESTINATIONS:
        raise BackupError(f"Unknown destination {destination!r}: use disk or s3.")
    if destination == "s3" and not settings.get("storage.s3_bucket"):
        raise BackupError("No S3 bucket is set (Admin → Settings → Storage): set one, or back up to this "
                          "server's disk.")
    backup = Backup(name=_archive_name(utcnow()), destination=destination, trigger=trigger, with_files=with_files,
                    status="queued", requested_by=getattr(actor, "email", None))
    db.session.add(backup)
    db.session.flush()
    audit.record("create", "Backup", backup.id, new={"name": backup.name, "destination": destination,
                                                     "with_files": with_files, "trigger": trigger}, actor=actor)
    db.session.commit()
    return backup


def start(backup_id):
    """Make a requested backup in the background: on an RQ worker, or in a thread when there is no Redis."""
    app = current_app._get_current_object()
    if app.config["REDIS_URL"]:
        from rq import Queue

        from app.services import queue

        Queue(QUEUE_NAME, connection=queue.redis_connection(app)).enqueue(
            "app.tasks.make_backup", backup_id, job_timeout=TASK_TIMEOUT_SECONDS, result_ttl=0, failure_ttl=86400)
    else:
        threading.Thread(target=_run_in_thread, args=(app, backup_id), name="backup", daemon=True).start()


def make_in_background(actor, with_files=False, destination=None):
    """The admin's "make one now": request it (audited) and hand it to a worker; returns the Backup row."""
    backup = request_backup(actor, with_files, destination, trigger="manual")
    try:
        start(backup.id)
    except Exception as exc:  # Redis down or refusing: say so on the row and to the person
        log.exception("backup %s could not be queued", backup.id)
        backup.status, backup.error, backup.finished_at = "failed", f"Could not be queued: {exc}"[:2000], utcnow()
        db.session.commit()
        raise BackupError(f"The backup could not be handed to a worker ({exc}); check Redis and the workers.") \
            from None
    return backup


def _run_in_thread(app, backup_id):
    with app.app_context():
        try:
            run(backup_id)
        finally:
            db.session.remove()


def run(backup_id):
    """Make the archive of a requested backup and store it; a failure is recorded and logged, never raised."""
    claimed = db.session.execute(sa.update(Backup).where(Backup.id == backup_id, Backup.status == "queued")
                                 .values(status="running")).rowcount
    db.session.commit()
    backup = db.session.get(Backup, backup_id)
    if not claimed:
        return backup  # deleted, or already made by another run
    tmp = tempfile.NamedTemporaryFile(prefix="neurapix-backup-", suffix=".zip", delete=False)
    try:
        with tmp:
            manifest = write_archive(tmp, with_files=backup.with_files)
            size = tmp.tell()
        ref = storage.destination(backup.destination).put_file(f"backups/{backup.name}", tmp.name)
    except Exception as exc:
        db.session.rollback()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp.name)
        log.exception("backup %s (%s) failed", backup_id, backup.name)
        backup.status, backup.error, backup.finished_at = "failed", f"{type(exc).__name__}: {exc}"[:2000], utcnow()
        db.session.commit()
        return backup
    backup.status, backup.ref, backup.size_bytes, backup.finished_at = "ok", ref, size, utcnow()
    backup.row_counts = {t["name"]: t["rows"] for t in manifest["tables"]}
    backup.alembic_revision = manifest["alembic_revision"]
    db.session.commit()
    log.info("backup %s stored at %s (%d bytes, %d rows)", backup.id, ref, size, backup.total_rows)
    if backup.trigger == "schedule":
        apply_retention()
    return backup


def make_now(actor=None, with_files=False, destination=None, trigger="cli"):
    """Request and make a backup in this process (the CLI); returns the finished Backup row."""
    return run(request_backup(actor, with_files, destination, trigger).id)


def _is_running(backup):
    since = backup.created_at if backup.created_at.tzinfo else backup.created_at.replace(tzinfo=timezone.utc)
    return backup.status == "running" and utcnow() - since < timedelta(seconds=TASK_TIMEOUT_SECONDS)


def _remove(backup, actor):
    if backup.ref:
        storage.delete(backup.ref)
    audit.record("delete", "Backup", backup.id, old={"name": backup.name, "ref": backup.ref,
                                                     "status": backup.status}, actor=actor)
    db.session.delete(backup)


def delete(backup_id, actor=None):
    """Delete a backup's archive and its record, audited; a backup still being made cannot be deleted."""
    backup = db.session.get(Backup, backup_id)
    if backup is None:
        raise BackupError("That backup no longer exists.")
    if _is_running(backup):
        raise BackupError(f"Backup {backup.name} is still being made: delete it once it has finished.")
    try:
        _remove(backup, actor)
    except storage.StorageError as exc:
        db.session.rollback()
        raise BackupError(f"The archive could not be deleted, so the backup is kept: {exc}") from None
    db.session.commit()


def apply_retention():
    """Keep the newest `backups.keep` successful daily backups; delete older daily ones (archives made by hand
    stay). Called only after a successful daily backup, so a failing schedule never eats the good archives."""
    stale = db.session.scalars(
        sa.select(Backup).where(Backup.trigger == "schedule", Backup.status == "ok")
        .order_by(Backup.created_at.desc(), Backup.id.desc()).offset(settings.get("backups.keep"))).all()
    for backup in stale:
        try:
            _remove(backup, actor=None)
            db.session.commit()
        except storage.StorageError as exc:
            db.session.rollback()
            log.error("backup retention: could not delete %s: %s", backup.name, exc)
    return len(stale)


def run_due(now=None):
    """The scheduler's tick: make today's backup once the time of day has come (once per day, whatever the
    number of ticks or schedulers: the day is a unique slot). Returns the Backup made, or None."""
    if not settings.get("backups.enabled"):
        return None
    now = now or utcnow()
    hour, minute = map(int, settings.get("backups.time_of_day").split(":"))
    if (now.hour, now.minute) < (hour, minute):
        return None
    destination = settings.get("backups.destination")
    backup = Backup(name=_archive_name(now), destination=destination, trigger="schedule", status="queued",
                    schedule_slot=now.date().isoformat(), created_at=now)
    db.session.add(backup)
    try:
        db.session.commit()
    except sa.exc.IntegrityError:
        db.session.rollback()
        return None
    return run(backup.id)


def recent(limit=50):
    return db.session.scalars(sa.select(Backup).order_by(Backup.created_at.desc(), Backup.id.desc())
                              .limit(limit)).all()


def last_failure():
    """The latest finished backup when it failed (for the dashboard), else None."""
    last = db.session.scalars(sa.select(Backup).where(Backup.status.in_(("ok", "failed")))
                              .order_by(Backup.created_at.desc(), Backup.id.desc()).limit(1)).first()
    return last if last is not None and last.status == "failed" else None


def download(backup_id, actor=None):
    """(Backup, the archive's bytes in chunks) for a streamed download; the download is audited."""
    backup = db.session.get(Backup, backup_id)
    if backup is None or backup.status != "ok" or not backup.ref:
        raise BackupError("This backup has no archive to download.")
    try:
        stream = storage.open_ref(backup.ref)
    except storage.StorageError as exc:
        raise BackupError(f"The archive cannot be read: {exc}") from None
    audit.record("download", "Backup", backup.id, actor=actor)
    db.session.commit()

    def generate():
        with contextlib.closing(stream):
            while chunk := stream.read(CHUNK):
                yield chunk

    return backup, generate()
