"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives, for the email tests.

`refuse` makes it answer the next N messages with a temporary failure (451), as a busy server would.
"""
import email
import email.policy
import re
import socket
import threading

from aiosmtpd.controller import Controller


class _Handler:
    def __init__(self, server):
        self.server = server

    async def handle_DATA(self, _smtp, _session, envelope):
        with self.server.lock:
            if self.server.refuse > 0:
                self.server.refuse -= 1
                return "451 4.3.0 Try again later"
            self.server.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


class SmtpServer:
    def __init__(self):
        self.messages, self.refuse, self.lock = [], 0, threading.Lock()
        # aiosmtpd checks it is up by connecting to its port, so the port must be known before it starts.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *_exc):
        self.controller.stop()

    def settings(self):
        """The Settings → Email values that point the app at this server."""
        return {"email.smtp_host": "127.0.0.1", "email.smtp_port": self.port, "email.smtp_security": "none",
                "email.from_address": "hello@neurapix.example", "site.public_url": "http://localhost"}

    def to(self, address):
        return [m for m in self.messages if m["To"] == address]

    @staticmethod
    def text(message):
        return message.get_body(("plain",)).get_content()

    @staticmethod
    def html(message):
        return message.get_body(("html",)).get_content()

    def link(self, message, path_prefix):
        """The path of the first link to `path_prefix` in the plain-text body (the test client follows it)."""
        found = re.search(r"https?://[^/\s]+(" + re.escape(path_prefix) + r"[^\s\"<]+)", self.text(message))
        assert found, self.text(message)
        return found.group(1)
