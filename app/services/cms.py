"""Site pages: the HTML allow-list every page is held to, slugs that cannot shadow the app, and languages.

HTML is sanitized with nh3 (the Ammonia sanitizer) when a page is saved and again when it is rendered, so
rows written any other way (SQL, an import) meet the same allow-list. The allow-list, in words:
- tags: text structure (p, headings, lists, blockquote, pre/code, hr, br), inline emphasis, links, images,
  figures, tables, and neutral containers (div, span, section, article, header, footer); nothing that runs
  or embeds (script, style, iframe, object, embed, form, input, svg, math) — script and style lose their text;
- attributes: class, title, lang, dir and a filtered style anywhere; id (prefixed "page-" so it cannot clash
  with the site's own ids); href/target on links (rel="noopener noreferrer" is forced); src/alt/width/height on
  images; colspan/rowspan/scope on table cells. No on* handler survives;
- URLs: http, https, mailto, tel and relative ones; javascript:, data:, vbscript: and the rest are dropped;
- style: only the properties in STYLE_PROPERTIES, and a declaration whose value holds url(, expression(,
  a backslash escape or "javascript:" is dropped (no remote loads, no CSS tricks, no overlays: position is out).
"""
import re

import nh3
import sqlalchemy as sa
from flask import current_app

from app.extensions import db
from app.models import Page
from app.services import catalog, settings

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "code", "ul", "ol", "li", "dl", "dt",
    "dd", "strong", "b", "em", "i", "u", "s", "strike", "sub", "sup", "small", "mark", "abbr", "q", "cite", "a",
    "img", "figure", "figcaption", "table", "caption", "thead", "tbody", "tfoot", "tr", "th", "td", "colgroup",
    "col", "div", "span", "section", "article", "header", "footer", "aside",
}
ALLOWED_ATTRIBUTES = {
    "*": {"class", "title", "lang", "dir", "style", "id"},
    "a": {"href", "target"},
    "img": {"src", "alt", "width", "height", "loading"},
    "th": {"colspan", "rowspan", "scope"},
    "td": {"colspan", "rowspan"},
    "col": {"span"},
    "ol": {"start", "type"},
}
URL_SCHEMES = set("http https mailto tel".split())
STYLE_PROPERTIES = {
    "color", "background-color", "text-align", "text-decoration", "font-weight", "font-style", "font-size",
    "vertical-align", "width", "height", "max-width", "margin-left", "padding-left", "border", "border-collapse",
}
_UNSAFE_STYLE_VALUE = re.compile(r"url\s*\(|expression\s*\(|javascript\s*:|\\|@import|<", re.I)


def _filter_attribute(_tag, name, value):
    if name == "style":
        kept = [d for d in value.split(";") if d.strip() and not _UNSAFE_STYLE_VALUE.search(d)]
        return ";".join(kept) or None
    if name == "target":
        return value if value in ("_blank", "_self") else None
    return value


_cleaner = nh3.Cleaner(
    tags=ALLOWED_TAGS, clean_content_tags={"script", "style"}, attributes=ALLOWED_ATTRIBUTES,
    attribute_filter=_filter_attribute, url_schemes=URL_SCHEMES, filter_style_properties=STYLE_PROPERTIES,
    id_prefix="page-", strip_comments=True, link_rel="noopener noreferrer",
)


def sanitize(html):
    """HTML held to the allow-list above; what the owner typed otherwise survives."""
    return _cleaner.clean(html or "")


# --- slugs ---

SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# Paths announced in the design but not routed yet, and names browsers and crawlers ask for.
RESERVED = {"api", "webhooks", "health", "p", "media", "uploads", "robots.txt", "favicon.ico", "sitemap.xml",
            "static", "admin"}


def reserved_slugs():
    """Every first path segment the app routes itself, plus RESERVED: a page may never take one."""
    taken = set(RESERVED)
    for rule in current_app.url_map.iter_rules():
        first = rule.rule.lstrip("/").split("/", 1)[0]
        if first and "<" not in first:
            taken.add(first)
    return taken


def slug_problem(slug):
    """Why a slug cannot be used, or None."""
    if not slug or not SLUG.fullmatch(slug):
        return "Use lower-case letters, digits and single hyphens, e.g. about-us."
    if slug in reserved_slugs():
        return f"/{slug} belongs to the app itself; choose another slug (e.g. {slug}-page)."
    return None


# --- translations and languages ---

FIELDS = ("title", "html_content", "seo_title", "seo_description")
FIELD_LABELS = {"title": "Title", "html_content": "Content (HTML)", "seo_title": "SEO title",
                "seo_description": "SEO description"}
LANGUAGE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8})?")


def clean_translations(data):
    """Translations checked (language codes, known text fields) with each html_content sanitized.

    ValueError says what to fix."""
    if data in (None, ""):
        return {}
    if not isinstance(data, dict):
        raise ValueError('Translations must be a JSON object such as {"de": {"title": "Über uns"}}.')
    cleaned = {}
    for code, fields in data.items():
        lang = str(code).lower()
        if not LANGUAGE.fullmatch(lang):
            raise ValueError(f"{code!r} is not a language code; use codes such as de, fr or pt-br.")
        if not isinstance(fields, dict):
            raise ValueError(f"Translation {code!r} must be an object with {', '.join(FIELDS)}.")
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise ValueError(f"Translation {code!r} has unknown field(s) {', '.join(sorted(unknown))}; "
                             f"allowed: {', '.join(FIELDS)}.")
        if any(not isinstance(v, str) for v in fields.values()):
            raise ValueError(f"Every field of translation {code!r} must be text.")
        cleaned[lang] = {k: (sanitize(v) if k == "html_content" else v.strip()) for k, v in fields.items()}
    return cleaned


def prepare(page):
    """Sanitize a page about to be saved (its HTML and every translation's); ValueError on bad input."""
    # Checked when the slug is set: a page whose slug a later app route took can still be edited.
    problem = slug_problem(page.slug) if sa.inspect(page).attrs.slug.history.has_changes() else None
    if problem:
        raise ValueError(problem)
    page.html_content = sanitize(page.html_content)
    page.translations = clean_translations(page.translations)


def languages(page):
    """The page's languages, the default (its main fields) first."""
    default = settings.get("site.default_language")
    return [default] + sorted(code for code in (page.translations or {}) if code != default)


def pick_language(page, requested, accept_languages):
    """?lang= when the page has it, then the browser's Accept-Language, then the default language."""
    available = languages(page)
    if requested:
        requested = requested.lower()
        for candidate in (requested, requested.split("-", 1)[0]):
            if candidate in available:
                return candidate
    return accept_languages.best_match(available) or available[0]


def localized(page, lang):
    """The page's fields in `lang`; each field the translation lacks falls back to the default language."""
    translation = (page.translations or {}).get(lang, {})
    fields = {name: translation.get(name) or getattr(page, name) or "" for name in FIELDS}
    fields["html_content"] = sanitize(fields["html_content"])
    fields["seo_title"] = fields["seo_title"] or fields["title"]
    return fields


def page_by_slug(slug):
    return db.session.scalars(sa.select(Page).where(Page.slug == slug)).first()


def published_pages():
    return db.session.scalars(sa.select(Page).where(Page.is_published.is_(True)).order_by(Page.slug)).all()


def listed_functions():
    """Functions the site lists and links to: visible in the catalog and their page switched on in Settings."""
    return [fn for fn in catalog.visible_functions() if settings.function_page_on(fn.key)]
