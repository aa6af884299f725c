"""Benchmark: backup and restore rows/s of `flask backup` (app/services/backup.py) against pg_dump --format=custom
and pg_restore of the same database in the same run, with the peak RSS of each.

Run on demand (not part of `make test`): .venv/bin/python bench/backup.py [JOBS]   (default 1,000,000 jobs and
JOBS/10 users). Needs PostgreSQL on 127.0.0.1 (as `make test` does) and pg_dump/pg_restore on PATH; makes and drops
its own databases. Each side runs in its own process, so its peak RSS is its own.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg2
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PREFIX = f"neurapix_bench_backup_{uuid.uuid4().hex[:6]}"
# Columns whose CHECK constraints accept only known words.
FIXED = {"role": "'customer'", "status": "'done'"}


def _url(name):
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _admin_sql(statement):
    conn = psycopg2.connect(PG_ADMIN_URL)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def _app(database_url):
    os.environ["TEST_DATABASE_URL"] = database_url
    from app import create_app

    return create_app("testing")


def _fill_sql(table, count, parents):
    """INSERT … SELECT FROM generate_series filling every required column of a table by its type."""
    import sqlalchemy as sa

    columns, values = [], []
    for column in table.columns:
        if column.primary_key:
            continue
        if column.foreign_keys:
            parent = next(iter(column.foreign_keys)).column.table.name
            if parent not in parents:
                continue
            value = f"1 + (i % {parents[parent]})"
        elif isinstance(column.type, sa.Boolean):
            value = "(i % 2 = 0)"
        elif isinstance(column.type, sa.Integer):
            value = "i % 1000"
        elif isinstance(column.type, sa.DateTime):
            value = "now() - (i || ' seconds')::interval"
        elif isinstance(column.type, sa.JSON):
            value = "json_build_object('n', i, 'format', 'PNG')::jsonb"
        elif isinstance(column.type, sa.String) or isinstance(column.type, sa.Text):
            text = f"'{column.name}-' || i"
            value = f"left({text}, {column.type.length})" if getattr(column.type, "length", None) else text
            if column.name in FIXED:
                value = FIXED[column.name]
            elif column.name == "email":
                value = "'user' || i || '@bench.example'"
            elif column.name == "password_hash":
                value = "'scrypt:32768:8:1$bench$' || md5(i::text)"
        else:
            continue
        columns.append(f'"{column.name}"')
        values.append(value)
    return (f'INSERT INTO "{table.name}" ({", ".join(columns)}) '
            f"SELECT {', '.join(values)} FROM generate_series(1, {count}) AS i")


def _populate(database_url, jobs):
    import sqlalchemy as sa
    from flask_migrate import upgrade

    from app.extensions import db

    app = _app(database_url)
    with app.app_context():
        upgrade()
        tables = db.metadata.tables
        users = max(jobs // 10, 1)
        with db.engine.begin() as conn:
            conn.execute(sa.text(_fill_sql(tables["users"], users, {})))
            conn.execute(sa.text(_fill_sql(tables["jobs"], jobs, {"users": users})))
        db.engine.dispose()
    return jobs + users


def _child(argv):
    """One step of the run in its own process: prints {"seconds": …} (or {"rows": …} for populate)."""
    phase, database_url, path = argv
    if phase == "populate":
        print(json.dumps({"rows": _populate(database_url, int(path))}))
        return
    app = _app(database_url)
    from app.extensions import db
    from app.services import backup

    with app.app_context():
        if phase == "restore":
            from flask_migrate import upgrade

            upgrade()
        started = time.perf_counter()
        if phase == "backup":
            with open(path, "wb") as out:
                backup.write_archive(out)
        else:
            backup.restore(path)
        seconds = time.perf_counter() - started
        db.engine.dispose()
    print(json.dumps({"seconds": seconds}))


def _run(command):
    """(seconds, peak RSS in MB, stdout) of a command run to completion."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=os.environ.copy())
    output = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{command[:3]} failed with status {status}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024, output.decode()


def main():
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    os.environ.update({"NEURAPIX_ENV": "testing", "ENCRYPTION_KEY": Fernet.generate_key().decode(),
                       "STORAGE_DIR": tempfile.mkdtemp(prefix="neurapix-bench-")})
    workdir = Path(tempfile.mkdtemp(prefix="neurapix-bench-backup-"))
    names = {side: f"{PREFIX}_{side}" for side in ("source", "ours", "pg")}
    for name in names.values():
        _admin_sql(f'CREATE DATABASE "{name}"')
    try:
        me = [sys.executable, __file__, "--child"]
        # Even the data is made in a child: a forked child's peak RSS starts from its parent's.
        rows = json.loads(_run(me + ["populate", _url(names["source"]), str(jobs)])[2].strip().splitlines()[-1])["rows"]
        archive, dump = workdir / "backup.zip", workdir / "backup.dump"
        ours_backup = _run(me + ["backup", _url(names["source"]), str(archive)])
        pg_backup = _run(["pg_dump", "--format=custom", "-f", str(dump), _url(names["source"])])
        ours_restore = _run(me + ["restore", _url(names["ours"]), str(archive)])
        pg_restore = _run(["pg_restore", "--no-owner", "-d", _url(names["pg"]), str(dump)])
        ours_backup_s = json.loads(ours_backup[2].strip().splitlines()[-1])["seconds"]
        ours_restore_s = json.loads(ours_restore[2].strip().splitlines()[-1])["seconds"]

        print(f"{jobs:,} jobs + {jobs // 10:,} users = {rows:,} rows")
        print(f"{'':<10}{'ours rows/s':>14}{'pg rows/s':>12}{'ratio':>8}{'ours RSS':>11}{'pg RSS':>9}")
        for label, ours_s, ours, pg in (("backup", ours_backup_s, ours_backup, pg_backup),
                                        ("restore", ours_restore_s, ours_restore, pg_restore)):
            print(f"{label:<10}{rows / ours_s:>14,.0f}{rows / pg[0]:>12,.0f}{pg[0] / ours_s:>7.2f}×"
                  f"{ours[1]:>8.0f} MB{pg[1]:>6.0f} MB")
        print(f"archive {archive.stat().st_size / 1e6:.1f} MB, pg_dump {dump.stat().st_size / 1e6:.1f} MB")
        print(f"ours timed in-process ({ours_backup_s:.1f} s, {ours_restore_s:.1f} s); with Python start-up and, "
              f"for restore, `flask db upgrade`: {ours_backup[0]:.1f} s, {ours_restore[0]:.1f} s. pg timed as "
              f"whole commands: {pg_backup[0]:.1f} s, {pg_restore[0]:.1f} s (pg_restore includes schema and indexes)")
    finally:
        for name in names.values():
            _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(os.environ["STORAGE_DIR"], ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
    else:
        main()
