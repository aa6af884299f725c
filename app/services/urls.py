"""Addresses we hand out: absolute links from the site's public URL, and return targets kept on our host.

A request's Host header is the client's claim; links that leave the page (canonical, sitemap, payment
return pages) use the owner's public URL setting instead whenever it is set.
"""
from urllib.parse import urlsplit

from flask import request, url_for

from app.services import settings


def absolute_url(endpoint, **values):
    """url_for(..., _external=True), but on site.public_url when the owner has set it."""
    base = settings.get("site.public_url")
    if not base:
        return url_for(endpoint, _external=True, **values)
    return base + url_for(endpoint, **values)


def is_local(target):
    """True for a path on this site ("/admin/users/?page=2"), or a full URL to this very host.

    Browsers read "//evil", "\\\\evil", "/\\evil" and "http:/evil" as other hosts, and ignore tabs and
    new lines inside URLs, so anything with those shapes is refused rather than repaired.
    """
    if not target or "\\" in target or any(ord(c) < 32 for c in target):
        return False
    parts = urlsplit(target)
    if not parts.scheme and not parts.netloc:
        return target.startswith("/") and not target.startswith("//")
    return (target.lower().startswith(("http://", "https://")) and parts.netloc == request.host
            and not parts.username)


def safe_return(target, fallback):
    """target when it stays on our host, else fallback."""
    return target if is_local(target) else fallback
