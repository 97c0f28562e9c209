"""A loopback instance metadata service (IMDSv2) that can announce a spot interruption.

Handed to test nodes through sshd ``SetEnv AWS_EC2_METADATA_SERVICE_ENDPOINT``:
nothing ever reaches the link-local address. It speaks the token protocol
(``PUT /latest/api/token`` with a TTL header, then GETs carrying
``X-aws-ec2-metadata-token``; a GET without a valid token is 401, as with
``HttpTokens=required``) and ``/latest/meta-data/spot/instance-action``: 404
until :meth:`interrupt_next` is called; then the first token that asks gets the
notice, and keeps getting it. Every node shares the endpoint, so the token is
what tells one machine from another, as the machines keep their token.
"""

from __future__ import annotations

import json
import secrets
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class MetadataServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.tokens: set[str] = set()
        self.armed = 0  # how many machines (tokens) still to interrupt
        self.interrupted: set[str] = set()  # tokens that got the notice
        self.polls = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def interrupt_next(self, machines: int = 1) -> None:
        with self.lock:
            self.armed += machines


class _Handler(BaseHTTPRequestHandler):
    server: MetadataServer

    def log_message(self, *args) -> None:
        pass

    def _answer(self, status: int, text: str = "", content_type: str = "text/plain") -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:
        if self.path != "/latest/api/token" or not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            self._answer(400, "Bad Request")
            return
        token = secrets.token_urlsafe(24)
        with self.server.lock:
            self.server.tokens.add(token)
        self._answer(200, token)

    def do_GET(self) -> None:
        token = self.headers.get("X-aws-ec2-metadata-token", "")
        server = self.server
        with server.lock:
            if token not in server.tokens:
                self._answer(401, "Unauthorized")
                return
            if self.path != "/latest/meta-data/spot/instance-action":
                self._answer(404, "Not Found")
                return
            server.polls += 1
            if token not in server.interrupted and server.armed > 0:
                server.armed -= 1
                server.interrupted.add(token)
            noticed = token in server.interrupted
        if not noticed:
            self._answer(404, "Not Found")
            return
        when = (datetime.now(timezone.utc) + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._answer(200, json.dumps({"action": "terminate", "time": when}), "application/json")
