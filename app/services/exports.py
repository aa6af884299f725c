"""CSV exports: the one writer every admin export streams through, safe to open in a spreadsheet.

A text cell starting with = + - @, a tab or a carriage return would run as a formula in Excel, LibreOffice
or Google Sheets; such cells get a leading apostrophe. Numbers stay numbers.
"""
import csv
import json
from datetime import date, datetime
from decimal import Decimal

from flask import Response, stream_with_context
from werkzeug.utils import secure_filename

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


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


def csv_response(filename, header, rows):
    """A streamed text/csv download: rows are read and written one at a time."""
    return Response(stream_with_context(csv_lines(header, rows)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{secure_filename(filename)}"',
                             "Cache-Control": "no-store"})
