"""The /admin IP allow-list: IPv4 and IPv6 blocks, refusals audited, the client address taken from trusted
proxies only, and an owner who cannot lock themself out."""
import pytest
import sqlalchemy as sa

import config
from app.extensions import db
from app.models import AuditLog, Setting
from app.services import allowlist, settings
from tests.helpers import form_values, login, make_user

KEY = "security.admin_allowlist"


def _allow(app, *networks):
    with app.app_context():
        settings.update({KEY: list(networks)})


def _staff_client(instance, role="admin"):
    client = instance.test_client()
    with instance.app_context():
        login(client, make_user(role))
    return client


def _refusals(app):
    with app.app_context():
        return [(r.actor_email is not None, r.new_values) for r in
                db.session.scalars(sa.select(AuditLog).where(AuditLog.action == "refused"))]


def _from(client, address, path="/admin/", **headers):
    return client.get(path, environ_overrides={"REMOTE_ADDR": address}, headers=headers)


def test_an_empty_list_admits_every_address(app):
    client = _staff_client(app)
    assert _from(client, "198.51.100.1").status_code == 200
    assert _from(client, "2001:db8::1").status_code == 200


def test_ipv4_blocks_admit_their_addresses_and_refuse_others_with_an_audit_row(app):
    _allow(app, "203.0.113.0/24", "192.0.2.7")
    client = _staff_client(app)
    assert _from(client, "203.0.113.9").status_code == 200
    assert _from(client, "192.0.2.7", "/admin/users/").status_code == 200
    assert _from(client, "::ffff:203.0.113.9").status_code == 200  # IPv4 seen through an IPv6 socket
    refused = _from(client, "198.51.100.1", "/admin/users/")
    assert refused.status_code == 403
    assert _refusals(app) == [(True, {"path": "/admin/users/", "ip": "198.51.100.1"})]


def test_ipv6_blocks_admit_their_addresses_and_refuse_others(app):
    _allow(app, "2001:db8::/32")
    client = _staff_client(app)
    assert _from(client, "2001:db8:abcd::5").status_code == 200
    assert _from(client, "2001:db9::1").status_code == 403
    assert _from(client, "203.0.113.9").status_code == 403


def test_the_list_guards_every_admin_path_for_everyone_and_nothing_else(app):
    _allow(app, "203.0.113.0/24")
    anonymous = app.test_client()
    assert _from(anonymous, "198.51.100.1", "/admin/").status_code == 403  # not even the login redirect
    assert _from(anonymous, "198.51.100.1", "/admin/static/admin/js/helpers.js").status_code == 403
    assert _from(anonymous, "198.51.100.1", "/").status_code == 200  # the site stays open
    assert _from(anonymous, "198.51.100.1", "/login").status_code == 200
    assert [ip for _actor, ip in _refusals(app)] == [{"path": "/admin/", "ip": "198.51.100.1"},
                                                      {"path": "/admin/static/admin/js/helpers.js",
                                                       "ip": "198.51.100.1"}]


@pytest.fixture
def proxied_app(app, monkeypatch):
    """Another web server on the same database, behind one trusted proxy (TRUSTED_PROXIES=1)."""
    from app import create_app

    monkeypatch.setattr(config.TestingConfig, "TRUSTED_PROXIES", 1)
    return create_app("testing")


def test_behind_a_trusted_proxy_the_address_it_saw_decides(app, proxied_app):
    _allow(app, "203.0.113.0/24", "2001:db8::/32")
    client = _staff_client(proxied_app)
    proxy = "10.0.0.5"  # the load balancer connects; it appends the client it saw
    assert _from(client, proxy, **{"X-Forwarded-For": "203.0.113.9"}).status_code == 200
    assert _from(client, proxy, **{"X-Forwarded-For": "2001:db8::9"}).status_code == 200
    assert _from(client, proxy, **{"X-Forwarded-For": "198.51.100.1"}).status_code == 403
    # A client that forges an allowed address first is still judged by the one the proxy appended.
    assert _from(client, proxy, **{"X-Forwarded-For": "203.0.113.9, 198.51.100.1"}).status_code == 403
    assert _refusals(app)[-1][1]["ip"] == "198.51.100.1"


def test_without_trusted_proxies_x_forwarded_for_is_not_believed(app):
    _allow(app, "203.0.113.0/24")
    client = _staff_client(app)
    assert _from(client, "198.51.100.1", **{"X-Forwarded-For": "203.0.113.9"}).status_code == 403
    assert _from(client, "203.0.113.9", **{"X-Forwarded-For": "198.51.100.1"}).status_code == 200


def _save_list(client, address, value):
    env = {"REMOTE_ADDR": address}
    data = form_values(client.get("/admin/settings/", environ_overrides=env).get_data(as_text=True), "site.name")
    data[KEY] = value
    return client.post("/admin/settings/", data=data, environ_overrides=env)


def test_an_admin_cannot_save_a_list_that_locks_them_out(app):
    client = _staff_client(app)
    refused = _save_list(client, "198.51.100.1", "203.0.113.0/24")
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    assert "this list would lock you out, since your address 198.51.100.1 is not in it" in page
    with app.app_context():
        assert db.session.get(Setting, KEY) is None
    saved = _save_list(client, "198.51.100.1", "203.0.113.0/24, 198.51.100.0/28, 2001:db8::/32")
    assert saved.status_code == 302
    with app.app_context():
        assert settings.get(KEY) == ["203.0.113.0/24", "198.51.100.0/28", "2001:db8::/32"]
    assert _save_list(client, "198.51.100.1", "").status_code == 302  # emptying it admits everyone again


@pytest.mark.parametrize("value", ["203.0.113.0/33", "not-an-ip", "2001:db8::/129", "203.0.113.0/24;rm"])
def test_malformed_entries_are_refused_with_a_message(app, value):
    client = _staff_client(app)
    resp = _save_list(client, "203.0.113.9", value)
    assert resp.status_code == 400 and "is not an IP address or CIDR block" in resp.get_data(as_text=True)


def test_admits_rules(app):
    with app.app_context():
        assert allowlist.admits("203.0.113.9", ["203.0.113.0/24"])
        assert not allowlist.admits("203.0.114.1", ["203.0.113.0/24"])
        assert allowlist.admits("2001:db8::1", ["2001:db8::/32"])
        assert not allowlist.admits("not an address", ["0.0.0.0/0"])
        assert allowlist.admits("198.51.100.1", [])
