"""CMS pages at /<slug> and the sitemap: thin views over services.cms.

App routes always win over a slug (Werkzeug prefers static rules), and services.cms refuses slugs the
app already routes, so a page can neither shadow nor be shadowed when it is saved.
"""
from flask import Response, abort, make_response, render_template, request
from flask_login import current_user

from app.services import cms, showcase
from app.site import bp


@bp.route("/<slug:slug>")
def page(slug):
    page = cms.page_by_slug(slug)
    preview = page is not None and not page.is_published
    if page is None or (preview and not (current_user.is_authenticated and current_user.is_staff)):
        abort(404)
    lang = cms.pick_language(page, request.args.get("lang"), request.accept_languages)
    resp = make_response(render_template("site/page.html", page=page, lang=lang, content=cms.localized(page, lang),
                                         languages=cms.languages(page), preview=preview))
    resp.vary.add("Accept-Language")
    if preview:
        resp.headers["Cache-Control"] = "private, no-store"
    return resp


@bp.route("/sitemap.xml")
def sitemap():
    xml = render_template("site/sitemap.xml", pages=[(p, cms.languages(p)) for p in cms.published_pages()],
                          functions=cms.listed_functions(), showcase_items=showcase.sitemap_items())
    return Response(xml, mimetype="application/xml")
