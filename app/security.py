"""HTTP protections every request passes through: which proxies to believe, security headers, and the
/admin IP allow-list gate.

The rules themselves (CIDR matching, the audit row of a refusal) live in services/allowlist.py.
"""
from flask import abort, request
from flask_talisman import Talisman
from werkzeug.exceptions import SecurityError
from werkzeug.middleware.proxy_fix import ProxyFix

from app.services import allowlist

# No inline script anywhere: every script is a file under /static (ours, vendored, or Flask-Admin's).
# Styles: files only for <style> sheets, but style="" attributes are allowed (style-src-attr), because
# Jodit, Select2 and Bootstrap's widgets write them into the markup they build, and CMS pages keep the
# safe inline styles the sanitizer allows (services/cms.py).
# Images may come from any https origin: S3 and CDN downloads redirect there.
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "style-src-attr": "'unsafe-inline'",
    "img-src": "'self' data: blob: https:",
    "font-src": "'self' data:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "frame-ancestors": "'none'",
}
HSTS_SECONDS = 365 * 24 * 3600


def view_options(app, view, **options):
    """Give one view its own header options (Talisman's per-view form), e.g. the sandbox CSP of stored files,
    which Talisman would otherwise overwrite with the site-wide policy."""
    app.extensions["talisman"](**options)(view)


def admin_gate():
    """Before every request: /admin answers only to the addresses the owner allowed (Settings → Security)."""
    if request.path == "/admin" or request.path.startswith("/admin/"):
        if not allowlist.admits(request.remote_addr):
            allowlist.refuse(request.remote_addr, request.path)
            abort(403)


def untrusted_host(_error):
    """A Host outside TRUSTED_HOSTS: no URL can be built for it, so the answer is plain text, not a page."""
    return "Bad request: this server does not answer for that host name.", 400, {"Content-Type": "text/plain"}


def init_app(app):
    proxies = app.config["TRUSTED_PROXIES"]
    if proxies:
        # Only the entries our own proxies appended are believed; a client's X-Forwarded-For is not.
        # X-Forwarded-Host and -Port are left out: the host comes from the request and TRUSTED_HOSTS.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=0, x_port=0)
    https = app.config["FORCE_HTTPS"]
    app.extensions["talisman"] = Talisman(
        app,
        content_security_policy=CONTENT_SECURITY_POLICY,
        frame_options="DENY",
        referrer_policy="strict-origin-when-cross-origin",
        force_https=https,
        strict_transport_security=https,
        strict_transport_security_max_age=HSTS_SECONDS,
        strict_transport_security_include_subdomains=False,
        # Cookie flags stay with config.py (Secure in production only), not Talisman's defaults.
        session_cookie_secure=False,
        session_cookie_http_only=app.config["SESSION_COOKIE_HTTPONLY"],
        session_cookie_samesite=app.config["SESSION_COOKIE_SAMESITE"],
        x_xss_protection=False,
    )
    app.before_request(admin_gate)
    app.register_error_handler(SecurityError, untrusted_host)
