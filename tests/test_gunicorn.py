"""The web process as the Procfile runs it: gunicorn with gunicorn.conf.py keeps serving while a client stalls."""
import os
import socket
import subprocess
import sys
import time

import requests

from tests.workers import ROOT, wait_for


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_idle_socket_does_not_stall_other_requests(app):
    port = _free_port()
    env = {**os.environ, "PORT": str(port), "WEB_CONCURRENCY": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def up():
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok
            except requests.RequestException:  # not listening yet, or the worker still booting
                return False
        wait_for(up, timeout=60, what="gunicorn to listen")
        # One worker process: with sync workers this silent connection held it until the 30 s timeout.
        idle = socket.create_connection(("127.0.0.1", port))
        time.sleep(0.3)  # let the worker accept the idle socket first
        try:
            for _ in range(5):
                resp = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                assert resp.status_code == 200 and resp.json() == {"status": "ok"}
        finally:
            idle.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_access_log_holds_no_link_token_and_no_email_address(app, tmp_path):
    port = _free_port()
    env = {**os.environ, "PORT": str(port), "WEB_CONCURRENCY": "1"}
    log_path = tmp_path / "access.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        def up():
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok
            except requests.RequestException:
                return False
        wait_for(up, timeout=60, what="gunicorn to listen")
        for path in ("/reset-password/SeCrEtToKeN.abc", "/verify-email/SeCrEtToKeN.def",
                     "/confirm-email/SeCrEtToKeN.ghi", "/admin/users/?search=someone%40example.com"):
            requests.get(f"http://127.0.0.1:{port}{path}", timeout=5, allow_redirects=False)
        wait_for(lambda: "/confirm-email/" in log_path.read_text(), timeout=10, what="the access log")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    written = log_path.read_text()
    assert "/reset-password/[redacted]" in written and "/verify-email/[redacted]" in written
    assert "SeCrEtToKeN" not in written and "someone" not in written
