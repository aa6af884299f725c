"""The outbound guard: provider-returned URLs are fetched only from public addresses (or allow-listed hosts),
over a pinned connection, with redirects re-checked, a streamed byte cap and no credentials to other hosts.

Every test here runs under `loopback_only`: a connect or DNS lookup outside 127.0.0.0/8 fails it, so the
refusals are proven by the guard's decision, never by a packet sent to a real internal address."""
import datetime
import ssl
import threading
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.services import fetch, jobs
from tests import pipeline as p
from tests.contract_servers import ReplicateServer
from tests.images import image_bytes

PNG = image_bytes(size=(16, 16))


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        server = self.server.owner
        server.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
        status, headers, body = server.answer(self.path)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        for chunk in body:
            try:
                self.wfile.write(chunk)
            except OSError:
                return  # the client stopped reading: that is the point of a cap

    def log_message(self, format, *args):
        pass


class FileServer:
    """A plain file host on a loopback address: /image.png, /redirect?to=URL, /hop/N (N redirects), /huge."""

    def __init__(self, host="127.0.0.1", tls=None):
        self.host, self.requests, self.tls, self.sni = host, [], tls, []

    def answer(self, path):
        if path == "/image.png":
            return 200, {"Content-Type": "image/png", "Content-Length": str(len(PNG))}, [PNG]
        if path.startswith("/redirect?to="):
            return 302, {"Location": path.partition("=")[2], "Content-Length": "0"}, []
        if path.startswith("/hop/"):
            left = int(path.rsplit("/", 1)[1])
            return 302, {"Location": f"/hop/{left - 1}" if left else "/image.png", "Content-Length": "0"}, []
        if path == "/huge":
            # No Content-Length: the cap must hold while streaming. 200 MB if nobody stops reading.
            return 200, {"Content-Type": "image/png"}, (b"\0" * 65536 for _ in range(3200))
        return 404, {"Content-Length": "0"}, []

    def __enter__(self):
        self._httpd = ThreadingHTTPServer((self.host, 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self
        if self.tls:
            self.tls.sni_callback = lambda _sock, name, _context: self.sni.append(name)
            self._httpd.socket = self.tls.wrap_socket(self._httpd.socket, server_side=True)
        self.port = self._httpd.server_address[1]
        self.url = f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()


def no_dns(host, port):
    raise AssertionError(f"no name should be resolved here, yet {host} was")


def resolver(answers):
    """A resolver with fixed answers per name, counting its calls (DNS is not queried in tests)."""
    calls = []

    def resolve(host, port):
        calls.append(host)
        return list(answers[host][min(len(calls), len(answers[host])) - 1])
    resolve.calls = calls
    return resolve


REFUSED = [
    ("http://127.0.0.2/latest", no_dns),
    ("http://169.254.169.254/latest/meta-data/iam/security-credentials/", no_dns),
    ("http://10.0.0.1/admin", no_dns),
    ("http://[::1]:8080/x.png", no_dns),
    ("http://[::ffff:127.0.0.1]/x.png", no_dns),
    ("http://0.0.0.0/x.png", no_dns),
    ("http://224.0.0.1/x.png", no_dns),
    ("file:///etc/passwd", no_dns),
    ("gopher://127.0.0.1:6379/_FLUSHALL", no_dns),
    ("http://user:pass@example.com/x.png", no_dns),
    ("http://evil.example/x.png", resolver({"evil.example": [["127.0.0.1"]]})),
    # One internal answer among public ones is enough to refuse (no "first public one" games).
    ("http://mixed.example/x.png", resolver({"mixed.example": [["93.184.216.34", "10.1.2.3"]]})),
]


@pytest.mark.parametrize("url,resolve", REFUSED, ids=[u for u, _r in REFUSED])
def test_the_guard_refuses_internal_and_non_http_urls(loopback_only, url, resolve):
    with pytest.raises(fetch.FetchRefused):
        fetch.check(url, resolve=resolve)
    with pytest.raises(fetch.FetchRefused):
        fetch.fetch(url, max_bytes=1024, timeout=2, resolve=resolve)


def test_a_public_address_passes_the_decision(loopback_only):
    target = fetch.check("https://cdn.example.com/out/1.png?sig=a",
                         resolve=resolver({"cdn.example.com": [["93.184.216.34"]]}))
    assert (target.address, target.host, target.port, target.path) == ("93.184.216.34", "cdn.example.com", 443,
                                                                        "/out/1.png?sig=a")


def test_allow_list_admits_only_the_listed_host(loopback_only):
    with FileServer() as files:
        body, content_type = fetch.fetch(f"{files.url}/image.png", allow_hosts=["127.0.0.1"], max_bytes=10**6,
                                         timeout=5)
        assert body == PNG and content_type == "image/png"
        with pytest.raises(fetch.FetchRefused, match="internal address"):
            fetch.fetch(f"{files.url}/image.png", allow_hosts=["127.0.0.2"], max_bytes=10**6, timeout=5)
    assert len(files.requests) == 1


def test_a_redirect_to_loopback_is_refused_before_any_request(loopback_only):
    with FileServer() as entry, FileServer("127.0.0.2") as internal:
        for target in (f"{internal.url}/image.png", "http://169.254.169.254/latest/meta-data/"):
            with pytest.raises(fetch.FetchRefused, match="internal address"):
                fetch.fetch(f"{entry.url}/redirect?to={target}", allow_hosts=["127.0.0.1"], max_bytes=10**6,
                            timeout=5)
        assert internal.requests == [] and len(entry.requests) == 2


def test_redirects_are_followed_a_few_times_only(loopback_only):
    with FileServer() as files:
        body, _type = fetch.fetch(f"{files.url}/hop/2", allow_hosts=["127.0.0.1"], max_bytes=10**6, timeout=5)
        assert body == PNG
        with pytest.raises(fetch.FetchRefused, match="redirected more than"):
            fetch.fetch(f"{files.url}/hop/9", allow_hosts=["127.0.0.1"], max_bytes=10**6, timeout=5)


def test_the_connection_goes_to_the_checked_address_not_a_second_answer(loopback_only):
    """DNS rebinding: the name resolves to an allowed address once, to an internal one afterwards. The
    fetcher resolves once and connects to what it checked; Host still names the host."""
    with FileServer() as files:
        resolve = resolver({"rebind.test": [["127.0.0.1"], ["10.0.0.1"]]})
        body, _type = fetch.fetch(f"http://rebind.test:{files.port}/image.png", allow_hosts=["rebind.test"],
                                  max_bytes=10**6, timeout=5, resolve=resolve)
        assert body == PNG and resolve.calls == ["rebind.test"]
        assert files.requests[0]["headers"]["host"] == f"rebind.test:{files.port}"


def _certificate(name, signer=None):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (x509.CertificateBuilder().subject_name(subject).public_key(key.public_key())
               .issuer_name(signer[1].subject if signer else subject).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(hours=1)))
    builder = (builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False) if signer
               else builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True))
    return key, builder.sign(signer[0] if signer else key, hashes.SHA256())


def test_https_is_pinned_yet_keeps_sni_and_the_certificate_check(loopback_only, tmp_path, monkeypatch):
    ca = _certificate("Neurapix test CA")
    leaf_key, leaf = _certificate("pinned.test", ca)
    (tmp_path / "ca.pem").write_bytes(ca[1].public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))  # trust the test CA only
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tmp_path / "leaf.pem")
    with FileServer(tls=tls) as files:
        local = resolver({"pinned.test": [["127.0.0.1"]], "other.test": [["127.0.0.1"]]})
        body, _type = fetch.fetch(f"https://pinned.test:{files.port}/image.png", allow_hosts=["pinned.test"],
                                  max_bytes=10**6, timeout=5, resolve=local)
        assert body == PNG and files.sni == ["pinned.test"]
        # Same address, another name: the certificate does not match it, so nothing is fetched.
        with pytest.raises(fetch.FetchError, match="SSLError"):
            fetch.fetch(f"https://other.test:{files.port}/image.png", allow_hosts=["other.test"], max_bytes=10**6,
                        timeout=5, resolve=local)
        assert len(files.requests) == 1


def test_an_oversize_output_stops_at_the_cap_while_streaming(loopback_only):
    with FileServer() as files:
        tracemalloc.start()
        try:
            with pytest.raises(fetch.FetchRefused, match="larger than the limit"):
                fetch.fetch(f"{files.url}/huge", allow_hosts=["127.0.0.1"], max_bytes=2 * 1024 * 1024, timeout=10)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    # The server offered 200 MB; what we held never went much past the 2 MB cap.
    assert peak < 8 * 1024 * 1024


def test_credentials_stay_on_their_own_origin(loopback_only):
    with FileServer() as api, FileServer() as elsewhere:
        secret = {"Authorization": "Bearer r8_secret"}
        body, _type = fetch.fetch(f"{api.url}/redirect?to={elsewhere.url}/image.png", allow_hosts=["127.0.0.1"],
                                  max_bytes=10**6, timeout=5, headers=secret)
        assert body == PNG
        assert api.requests[0]["headers"]["authorization"] == "Bearer r8_secret"
        assert "authorization" not in elsewhere.requests[0]["headers"]


class ForeignLinksReplicate(ReplicateServer):
    """A Replicate that names another host in urls.get / urls.cancel and hosts its output there."""

    def __init__(self, elsewhere, **kwargs):
        super().__init__(**kwargs)
        self.elsewhere = elsewhere

    def _prediction(self, job):
        body = super()._prediction(job)
        body["urls"] = {name: f"{self.elsewhere.url}/redirect?to={url}" for name, url in body["urls"].items()}
        if body["output"]:
            body["output"] = f"{self.elsewhere.url}/image.png"
        return body


def test_the_replicate_token_never_follows_a_url_to_another_host(app, loopback_only):
    with FileServer() as elsewhere, ForeignLinksReplicate(elsewhere, token="r8_job_token") as replicate:
        with app.app_context():
            fn = p.add_function(p.replicate_provider(replicate, retries=0))
            user = p.funded_customer(5)
            job_id = jobs.submit(user, fn.key, image_bytes()).id
        p.drain(app)
        with app.app_context():
            job = p.job(job_id)
            assert job.status == "done", job.error
        # Polls went to the configured API host; the other host only served the output, without the token.
        assert [r["path"] for r in elsewhere.requests] == ["/image.png"]
        assert not [r for r in elsewhere.requests if "authorization" in r["headers"]]
        assert all(r["headers"]["authorization"] == "Bearer r8_job_token" for r in replicate.requests)
