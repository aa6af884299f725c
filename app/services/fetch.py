"""The one guarded fetcher for URLs someone else chose (provider outputs): http(s) only, internal addresses
refused, the connection pinned to the checked address, every redirect re-checked, a byte cap while streaming.
"""
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import urllib3

MAX_REDIRECTS = 3
DEFAULT_PORTS = dict(http=80, https=443)  # the only schemes fetched
REDIRECTS = {301, 302, 303, 307, 308}
CHUNK = 64 * 1024
# IPv6 prefixes that embed an IPv4 address a gateway will connect to (NAT64).
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class FetchError(Exception):
    """A fetch that did not produce a body; `retryable` says whether trying again may help."""

    def __init__(self, message, retryable=False):
        super().__init__(message)
        self.retryable = retryable


class FetchRefused(FetchError):
    """A URL we will not fetch at all (scheme, internal address, too many redirects, too large)."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (the address that passed the check) and what to call the host."""

    scheme: str
    host: str
    port: int
    address: str
    path: str

    @property
    def origin(self):
        return (self.scheme, self.host, self.port)

    @property
    def host_header(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def resolve(host, port):
    """Every address the system resolver gives for host (the real resolver; tests pass their own)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"The host {host} could not be resolved.", retryable=True) from exc
    return [info[4][0] for info in infos]


def internal(address):
    """True for any address that is not plainly on the public internet (loopback, private, link-local,
    multicast, reserved, unspecified, shared, documentation…), IPv4 inside IPv6 included."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    elif ip.version == 6 and ip in NAT64:
        ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or not ip.is_global)


def check(url, *, allow_hosts=(), resolve=resolve):
    """Decide whether url may be fetched; returns the Target to connect to, or raises FetchRefused.

    The host is resolved once here, and the caller connects to the address returned, so a DNS answer
    that changes between check and connect (rebinding) cannot move the request to an internal address."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise FetchRefused("The output URL is malformed.") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise FetchRefused(f"Only http(s) output URLs are fetched, not {parts.scheme or 'a relative'} URL.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise FetchRefused("The output URL has no host.")
    if parts.username or parts.password:
        raise FetchRefused("Output URLs with credentials in them are not fetched.")
    port = port or DEFAULT_PORTS[parts.scheme]
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        addresses = resolve(host, port)
    if not addresses:
        raise FetchError(f"The host {host} has no address.", retryable=True)
    allowed = host.lower() in {h.lower().strip("[]") for h in allow_hosts}
    if not allowed:
        # Every answer must be public: picking the first public one would let an attacker pair it with an
        # internal one and rely on retries.
        blocked = [a for a in addresses if internal(a)]
        if blocked:
            raise FetchRefused(f"The output URL's host {host} is an internal address ({blocked[0]}); "
                               "list it in the provider's allow_hosts if it is yours.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port, addresses[0], path)


def _pool(target, timeout):
    timeouts = urllib3.Timeout(connect=timeout, read=timeout)
    if target.scheme == "https":
        # Connect to the checked address; SNI and the certificate check still use the host name.
        return urllib3.HTTPSConnectionPool(target.address, target.port, timeout=timeouts, retries=False,
                                           server_hostname=target.host, assert_hostname=target.host)
    return urllib3.HTTPConnectionPool(target.address, target.port, timeout=timeouts, retries=False)


def _read(resp, max_bytes, deadline):
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchRefused(f"The output is {int(declared):,} bytes; the limit is {max_bytes:,} bytes.")
    chunks, size = [], 0
    for chunk in resp.stream(CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise FetchRefused(f"The output is larger than the limit of {max_bytes:,} bytes.")
        if time.monotonic() > deadline:
            raise FetchError("The output download took too long.", retryable=True)
        chunks.append(chunk)
    return b"".join(chunks)


def fetch(url, *, allow_hosts=(), max_bytes, timeout, headers=None, resolve=resolve, method="GET", body=None):
    """GET url under the guard → (body, Content-Type or None). FetchRefused / FetchError otherwise.

    `headers` go to url's own origin only: a redirect elsewhere drops them, so a credential never follows
    an output URL to another host. A POST (an alert to the owner's webhook) sends `body` and follows no
    redirect: its body is for that address alone."""
    deadline = time.monotonic() + timeout
    sent = dict(headers or {})
    origin = None
    for _hop in range(MAX_REDIRECTS + 1):
        target = check(url, allow_hosts=allow_hosts, resolve=resolve)
        origin = origin or target.origin
        if target.origin != origin:
            sent = {}
        pool = _pool(target, timeout)
        try:
            resp = pool.urlopen(method, target.path, body=body, headers={**sent, "Host": target.host_header},
                                redirect=False, retries=False, preload_content=False, assert_same_host=False)
            try:
                if resp.status in REDIRECTS and method != "GET":
                    raise FetchError(f"The address redirected ({resp.status}); give its final URL.")
                if resp.status in REDIRECTS:
                    location = resp.headers.get("Location")
                    if not location:
                        raise FetchError(f"The output URL redirected ({resp.status}) without a Location.")
                    url = urljoin(url, location)
                    continue
                if resp.status >= 400:
                    raise FetchError(f"The output download answered {resp.status}.",
                                     retryable=resp.status >= 500 or resp.status == 429)
                body = _read(resp, max_bytes, deadline)
                return body, (resp.headers.get("Content-Type") or "").split(";")[0].strip() or None
            finally:
                resp.close()  # never drain: the rest of an oversize body is not worth reading
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise FetchError(f"The output download failed: {exc.__class__.__name__}", retryable=True) from None
        finally:
            pool.close()
    raise FetchRefused(f"The output URL redirected more than {MAX_REDIRECTS} times.")
