"""Helpers shared by the tests: users, login, CSRF-carrying posts, reading rendered forms."""
import re
import uuid
from html.parser import HTMLParser

from flask_wtf.csrf import generate_csrf
from werkzeug.datastructures import MultiDict


def make_user(role="customer", email=None, password="correct-horse-battery", **fields):
    from app.extensions import db
    from app.models import User

    user = User(email=email or f"{role}-{uuid.uuid4().hex[:8]}@example.com", role=role, **fields)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    # Loaded and detached, so tests may read it after its app context ends.
    db.session.refresh(user)
    db.session.expunge(user)
    return user


def login(client, user):
    """Sign a test client in as user (the login form itself is tested in test_auth)."""
    with client.session_transaction() as sess:
        sess["_user_id"] = user.get_id()  # "<id>:<session version>", as Flask-Login stores it
        sess["_fresh"] = True


def csrf_token(client):
    """A valid CSRF token for this client's session, as a page would embed it."""
    with client:
        # Anonymous: the login form; signed in: redirected to /account, whose logout form has one.
        client.get("/login", follow_redirects=True)
        return generate_csrf()


def post(client, url, data=None, **kwargs):
    """POST a form the way a browser would: with the session's CSRF token."""
    data = dict(data or {})
    data.setdefault("csrf_token", csrf_token(client))
    return client.post(url, data=data, **kwargs)


class FormReader(HTMLParser):
    """Reads the values a browser would submit for the first <form> holding a given field."""

    def __init__(self):
        super().__init__()
        self.forms, self._form, self._select, self._textarea = [], None, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = []
            self.forms.append(self._form)
        elif self._form is None:
            return
        elif tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self._form.append((a["name"], a.get("value", "y")))
            elif kind not in ("submit", "button", "file"):
                self._form.append((a["name"], a.get("value", "")))
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select and "selected" in a:
            self._form.append((self._select, a.get("value", "")))
        elif tag == "textarea":
            self._textarea = [a.get("name"), ""]

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self._form.append(tuple(self._textarea))
            self._textarea = None
        elif tag == "form":
            self._form = None


def form_values(html, field=None):
    """What a browser would submit from the page's form holding `field` (default: its largest form)."""
    reader = FormReader()
    reader.feed(html)
    forms = [f for f in reader.forms if field is None or any(name == field for name, _ in f)]
    if not forms:
        raise AssertionError(f"no form with field {field!r} on the page")
    return MultiDict(max(forms, key=len))


def flashes(html):
    return re.findall(r'class="alert alert-(?:danger|error)[^"]*"[^>]*>(.*?)</div>', html, re.S)


def browser_login(page, base_url, email, password, then="**/admin/", next_path=None):
    """Log in through the real login form in a Playwright page and wait for the landing page."""
    page.goto(f"{base_url}/login" + (f"?next={next_path}" if next_path else ""))
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("input[type=submit]")
    page.wait_for_url(then)
