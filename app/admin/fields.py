"""Structured form editors for JSON columns: rows of inputs (a key, a value) that people fill in instead of
raw JSON, added and removed in the browser by js/admin.js (no inline script), checked on the server.

A field posts one marker input under its own name and one input per column and row (`<name>-<column>`); the
rows are turned into the stored JSON by `to_data`, which raises ValueError with words for the owner, and
WTForms shows that error on the field and saves nothing. Scripts may still post a JSON object under the
field's own name instead of the rows.
"""
import json

from markupsafe import Markup
from wtforms.fields import Field
from wtforms.utils import unset_value

from app.services import cms, uploads

ROWS = "rows"  # the marker's value: the rows below carry the data


class Column:
    def __init__(self, name, label, kind="text", choices=(), placeholder=""):
        self.name, self.label, self.kind, self.choices, self.placeholder = name, label, kind, choices, placeholder


class RowsWidget:
    def _cell(self, field, column, value, row_id):
        name = f"{field.name}-{column.name}"
        label = f"{field.id}-head-{column.name}"
        if column.kind == "select":
            options = Markup("").join(
                Markup('<option value="{}"{}>{}</option>').format(v, " selected" if v == value else "", text)
                for v, text in (("", "Choose…"),) + tuple(column.choices))
            return Markup('<select class="form-control form-control-sm" name="{}" aria-labelledby="{} {}">{}</select>'
                          ).format(name, label, row_id, options)
        if column.kind == "textarea":
            return Markup('<textarea class="form-control form-control-sm" name="{}" rows="2" aria-labelledby="{} {}">'
                          '{}</textarea>').format(name, label, row_id, value)
        return Markup('<input class="form-control form-control-sm" type="{}" name="{}" value="{}" placeholder="{}" '
                      'aria-labelledby="{} {}">').format("number" if column.kind == "number" else "text", name,
                                                         value, column.placeholder, label, row_id)

    def _row(self, field, row, index):
        """Row `index` (0-based), or the blank row js/admin.js copies (index None; it renumbers the copy)."""
        row_id = f"{field.id}-row-{'new' if index is None else index}"
        number = "new" if index is None else index + 1
        cells = Markup("").join(Markup("<td>{}</td>").format(self._cell(field, c, str(row.get(c.name, "")), row_id))
                                for c in field.columns)
        return Markup('<tr><th scope="row" id="{}" class="kv-row-label"><span class="sr-only">Row {}</span></th>{}'
                      '<td><button type="button" class="btn btn-sm btn-outline-danger" data-kv-remove '
                      'aria-label="Remove row {}">Remove</button></td></tr>').format(row_id, number, cells, number)

    def __call__(self, field, **kwargs):
        heads = Markup("").join(Markup('<th scope="col" id="{}-head-{}">{}</th>').format(field.id, c.name, c.label)
                                for c in field.columns)
        rows = Markup("").join(self._row(field, row, i) for i, row in enumerate(field.rows()))
        return Markup(
            '<div class="kv-editor" id="{id}" data-kv-editor>'
            '<input type="hidden" name="{name}" value="{marker}">'
            '<div class="table-responsive"><table class="table table-sm kv-rows">'
            '<thead><tr><td></td>{heads}<td></td></tr></thead><tbody>{rows}</tbody></table></div>'
            '<template data-kv-template>{blank}</template>'
            '<button type="button" class="btn btn-sm btn-outline-secondary" data-kv-add>{add}</button>'
            '</div>').format(id=field.id, name=field.name, marker=ROWS, heads=heads, rows=rows,
                             blank=self._row(field, {}, None), add=field.add_label)


class RowsField(Field):
    """A JSON column edited as rows. Subclasses give `columns`, `to_rows(stored)`, `from_rows(rows)` (rows → the
    JSON shape, refusing duplicates) and `clean(data)` (the service's check; ValueError says what to fix)."""

    widget = RowsWidget()
    columns: tuple = ()
    add_label = "Add a row"
    _formdata = None

    def process(self, formdata, data=unset_value, extra_filters=None):
        self._formdata = formdata
        super().process(formdata, data, extra_filters)

    def rows(self):
        if self.raw_data and self.raw_data[0] == ROWS and self._formdata is not None:
            return self.posted_rows()  # shown again as typed when the form comes back with an error
        return self.to_rows(self.data or {})

    def posted_rows(self):
        cells = [self._formdata.getlist(f"{self.name}-{c.name}") for c in self.columns]
        rows = [dict(zip((c.name for c in self.columns), values)) for values in zip(*cells)]
        return [r for r in rows if any(str(v).strip() for v in r.values())]  # blank rows are left out

    def process_formdata(self, valuelist):
        if not valuelist:
            return
        if valuelist[0] == ROWS:
            self.data = self.clean(self.from_rows(self.posted_rows()))
            return
        try:
            self.data = self.clean(json.loads(valuelist[0] or "{}"))
        except json.JSONDecodeError:
            raise ValueError("Not valid JSON.") from None


class PlanLimitsField(RowsField):
    """Plan.limits: one row per limit, a whole number each (services/uploads.py enforces them)."""

    columns = (Column("key", "Limit", "select", tuple(uploads.PLAN_LIMITS.items())),
               Column("value", "Value", "number"))
    add_label = "Add a limit"

    def to_rows(self, data):
        return [{"key": k, "value": v} for k, v in data.items()]

    def from_rows(self, rows):
        data = {}
        for row in rows:
            if not row["key"]:
                raise ValueError("Choose which limit each row sets.")
            if row["key"] in data:
                raise ValueError(f"{uploads.PLAN_LIMITS.get(row['key'], row['key'])} is set twice; keep one row.")
            data[row["key"]] = row["value"].strip()
        return data

    def clean(self, data):
        return uploads.clean_plan_limits(data)


class TranslationsField(RowsField):
    """Page.translations: one row per language and field (services/cms.py checks and sanitizes them)."""

    columns = (Column("language", "Language", placeholder="de"),
               Column("field", "Field", "select", tuple((f, cms.FIELD_LABELS[f]) for f in cms.FIELDS)),
               Column("text", "Text", "textarea"))
    add_label = "Add a translated field"

    def to_rows(self, data):
        return [{"language": lang, "field": name, "text": text}
                for lang, fields in data.items() for name, text in fields.items()]

    def from_rows(self, rows):
        data = {}
        for row in rows:
            lang, name = row["language"].strip().lower(), row["field"]
            if not lang or not name:
                raise ValueError("Every translated text needs a language code and a field.")
            if name in data.get(lang, {}):
                raise ValueError(f"{cms.FIELD_LABELS.get(name, name)} in {lang!r} is given twice; keep one row.")
            data.setdefault(lang, {})[name] = row["text"]
        return data

    def clean(self, data):
        return cms.clean_translations(data)
