"""The /admin IP allow-list: which client addresses may open the admin, and the audit row of a refusal.

The list is the runtime setting security.admin_allowlist (CIDR blocks, IPv4 and IPv6); empty admits everyone.
The address is request.remote_addr, which ProxyFix sets from trusted proxies only (TRUSTED_PROXIES).
"""
import ipaddress

from app.extensions import db
from app.services import audit, settings

KEY = "security.admin_allowlist"


def _address(text):
    try:
        address = ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None
    # An IPv4 client seen through an IPv6 socket (::ffff:203.0.113.9) is that IPv4 client.
    return getattr(address, "ipv4_mapped", None) or address


def admits(address, networks=None):
    """True when address is inside one of networks (the saved list when not given), or the list is empty."""
    networks = settings.get(KEY) if networks is None else networks
    if not networks:
        return True
    client = _address(address)
    return client is not None and any(client in ipaddress.ip_network(n) for n in networks)


def refuse(address, path):
    """Record a refused /admin request; committed on its own, since the request goes no further."""
    audit.record("refused", "AdminAccess", None, new={"path": path[:200], "ip": address})
    db.session.commit()


def check_saver_admitted(values, address):
    """Refuse a new list that would shut out the admin saving it (SettingError on the list's field)."""
    if KEY in values and not admits(address, values[KEY]):
        raise settings.SettingError({KEY: f"Not saved: this list would lock you out, since your address "
                                          f"{address} is not in it. Add it (e.g. {address}), or save from an "
                                          "address the list allows."})
