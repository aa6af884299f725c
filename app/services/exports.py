"""Exports: the one path every list export (admin download or `flask export`) streams through, audited.

CSV is safe to open in a spreadsheet: a text cell starting with = + - @, a tab or a carriage return would run
as a formula in Excel, LibreOffice or Google Sheets, so it gets a leading apostrophe; numbers stay numbers.
JSON Lines carries the same values as JSON, one object per row. Rows come from a server-side cursor in
batches, so memory stays flat however long the list is.
"""
import csv
import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

import sqlalchemy as sa
from flask import Response, stream_with_context
from werkzeug.utils import secure_filename

from app.extensions import db
from app.services import audit

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FORMATS = {"csv": "text/csv", "jsonl": "application/x-ndjson"}
BATCH = 1000  # rows per fetch from the server-side cursor
# `flask export` runs at the server's shell with no user row; the audit log names it "cli".
CLI_ACTOR = SimpleNamespace(id=None, email="cli")


class ExportError(ValueError):
    """An export that cannot run as asked (unknown format, a filter the list does not have)."""


def cell(value):
    """One value as CSV text, formula starts neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Line:
    """csv.writer target that hands each encoded line back instead of storing it."""

    def write(self, line):
        return line


def csv_lines(header, rows):
    """The header line, then one line per row (an iterable of value sequences), every cell through cell()."""
    writer = csv.writer(_Line())
    yield writer.writerow([cell(h) for h in header])
    for row in rows:
        yield writer.writerow([cell(v) for v in row])


def json_value(value):
    """One value as JSON data: datetimes ISO, decimals as text, related rows by their name."""
    if value is None or isinstance(value, (bool, int, float, str, dict, list)):
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def jsonl_lines(keys, rows):
    """One JSON object per row (an iterable of value sequences), keyed by column name, one line each."""
    for row in rows:
        yield json.dumps(dict(zip(keys, map(json_value, row))), ensure_ascii=False, sort_keys=True) + "\n"


def streamed(query):
    """The rows of an ORM query read through a server-side cursor, BATCH at a time, never all at once.

    Run as a 2.0 select: the legacy Query de-duplicates rows whenever it eager-joins a related row (a job's
    user), which needs every row in memory and so refuses yield_per.
    """
    return db.session.scalars(query.statement, execution_options={"stream_results": True, "yield_per": BATCH})


def filter_clauses(model, since=None, until=None, status=None):
    """WHERE clauses for the CLI's --since/--until (whole UTC days, both included) and --status."""
    clauses = []
    if since:
        clauses.append(model.created_at >= datetime.combine(since, datetime.min.time(), timezone.utc))
    if until:
        clauses.append(model.created_at < datetime.combine(until + timedelta(days=1), datetime.min.time(),
                                                           timezone.utc))
    if status:
        if "status" not in sa.inspect(model).columns:
            raise ExportError("This list has no status to filter on; drop --status.")
        clauses.append(model.status == status)
    return clauses


def export(list_name, fmt, columns, rows, filters, actor=None):
    """Audit the export of one list (committed now: a download cut short was still taken), then its lines.

    columns: (name, label) pairs; rows: an iterable of value sequences, read lazily as the lines are.
    CSV has a header of labels, JSON Lines objects keyed by name.
    """
    if fmt not in FORMATS:
        raise ExportError(f"Unknown export format {fmt!r}: use {' or '.join(FORMATS)}.")
    audit.record("export", list_name, new={"list": list_name, "format": fmt, "filters": filters}, actor=actor)
    db.session.commit()
    if fmt == "csv":
        return csv_lines([label for _name, label in columns], rows)
    return jsonl_lines([name for name, _label in columns], rows)


def response(filename, fmt, lines):
    """A streamed download of an export's lines: written to the client as they are made."""
    return Response(stream_with_context(lines), mimetype=FORMATS[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{secure_filename(filename)}"',
                             "Cache-Control": "no-store"})
