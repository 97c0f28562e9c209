"""A loopback HTTP proxy in front of moto that answers chosen AWS calls with AWS's own errors.

Everything is forwarded unchanged (method, path, query, headers, body; status,
headers, body back) except requests that match a ``FaultRule``: those get the
error response the real service sends, in its own format (EC2's
``<Response><Errors>``, IAM/STS's ``<ErrorResponse>``, S3's ``<Error>``, JSON
services' ``__type``), so botocore parses, classifies and retries them exactly
as it would against AWS. Every request is logged as ``(service, action)``.

Use in a test module::

    from tests.awsfaults import REQUEST_LIMIT_EXCEEDED, aws_faults  # noqa: F401  (fixture)
    from tests.motoserver import moto_server  # noqa: F401  (fixture)

    def test_retries(aws_faults):
        rule = aws_faults.add(REQUEST_LIMIT_EXCEEDED.on("DescribeInstances", times=2))
        ...
        assert aws_faults.fired(rule) == 2
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

_HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade", "expect",
}
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")


@dataclass(eq=False)  # identity: two equal-looking rules are two rules with their own counts
class FaultRule:
    """Answer ``action`` with ``status``/``code`` for the first ``times`` matching calls (None: always).

    ``action``: the API name (``DescribeInstances``, ``PutObject``, ``ListObjectsV2``...); ``*``: every call
    (with ``service``: the service is down).
    ``user_agent``: only requests whose User-Agent contains this substring.
    ``service``: only this signing name (``ec2``, ``iam``, ``sts``, ``s3``...).
    ``forward``: the request still reaches the service (and is applied); only its answer is
    replaced by this error: a lost answer, as when a 5xx follows a write that landed.
    ``after``: the first ``after`` matching calls pass (a zone that gives some machines, then none).
    """

    action: str
    status: int
    code: str
    message: str = ""
    times: int | None = None
    user_agent: str | None = None
    service: str | None = None
    param: tuple[str, str] | None = None  # only query/form requests with this parameter (name, value)
    forward: bool = False
    after: int = 0

    def matches(self, service: str, action: str, user_agent: str, form: dict[str, list[str]] | None = None) -> bool:
        return (
            self.action in (action, "*")
            and (self.service is None or self.service == service)
            and (self.user_agent is None or self.user_agent in user_agent)
            and (self.param is None or (form or {}).get(self.param[0]) == [self.param[1]])
        )


@dataclass(frozen=True)
class Fault:
    """An error AWS sends; ``.on(action, ...)`` makes the rule that injects it."""

    status: int
    code: str
    message: str
    service: str | None = None

    def on(self, action: str, times: int | None = None, user_agent: str | None = None,
           param: tuple[str, str] | None = None, after: int = 0) -> FaultRule:
        return FaultRule(
            action=action, status=self.status, code=self.code, message=self.message,
            times=times, user_agent=user_agent, service=self.service, param=param, after=after,
        )


REQUEST_LIMIT_EXCEEDED = Fault(503, "RequestLimitExceeded", "Request limit exceeded.", "ec2")
INSUFFICIENT_INSTANCE_CAPACITY = Fault(
    500, "InsufficientInstanceCapacity",
    "We currently do not have sufficient capacity in the Availability Zone you requested.", "ec2",
)
NO_SPOT_CAPACITY = Fault(  # what a spot RunInstances is answered in a zone short of spot capacity
    500, "InsufficientInstanceCapacity", "There is no Spot capacity available that matches your request.", "ec2",
)
UNSUPPORTED_IN_ZONE = Fault(
    400, "Unsupported",
    "Your requested instance type (c5.large) is not supported in your requested Availability Zone (us-east-1a). "
    "Please retry your request by not specifying an Availability Zone or choosing us-east-1b, us-east-1c.", "ec2",
)
VCPU_LIMIT_EXCEEDED = Fault(
    400, "VcpuLimitExceeded", "You have requested more vCPU capacity than your current vCPU limit allows.", "ec2"
)
THROTTLING = Fault(400, "Throttling", "Rate exceeded", "iam")
SLOW_DOWN = Fault(503, "SlowDown", "Please reduce your request rate.", "s3")
INTERNAL_ERROR = Fault(500, "InternalError", "We encountered an internal error. Please try again.", "s3")
SERVICE_UNAVAILABLE = Fault(503, "ServiceUnavailable", "Service is unable to handle request.")


def s3_operation(method: str, path: str, query: dict[str, list[str]], headers) -> str:
    """The S3 API name of a REST request (path-style: ``/bucket/key``)."""
    if "x-id" in query:  # botocore names some operations itself
        return query["x-id"][0]
    bucket, _, key = unquote(path).lstrip("/").partition("/")
    if not bucket:
        return "ListBuckets"
    if not key:
        if method == "PUT":
            sub = next((name for name in ("tagging", "policy", "versioning", "acl", "cors", "lifecycle",
                                          "encryption", "notification") if name in query), None)
            return f"PutBucket{sub.capitalize()}" if sub else "CreateBucket"
        if method == "POST" and "delete" in query:
            return "DeleteObjects"
        if method == "DELETE":
            return "DeleteBucket"
        if method == "HEAD":
            return "HeadBucket"
        if query.get("list-type") == ["2"]:
            return "ListObjectsV2"
        for name, operation in (("uploads", "ListMultipartUploads"), ("versions", "ListObjectVersions"),
                                ("location", "GetBucketLocation"), ("tagging", "GetBucketTagging")):
            if name in query:
                return operation
        return "ListObjects"
    copy = "x-amz-copy-source" in headers
    if method == "PUT":
        if "partNumber" in query and "uploadId" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        if "tagging" in query:
            return "PutObjectTagging"
        if "acl" in query:
            return "PutObjectAcl"
        return "CopyObject" if copy else "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        return "RestoreObject" if "restore" in query else "PostObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    if method == "HEAD":
        return "HeadObject"
    if "uploadId" in query:
        return "ListParts"
    return "GetObjectTagging" if "tagging" in query else "GetObject"


def classify(method: str, target: str, headers, body: bytes) -> tuple[str, str]:
    """``(service, action)`` of a request: the service from the SigV4 scope, the action by protocol."""
    split = urlsplit(target)
    query = parse_qs(split.query, keep_blank_values=True)
    scope = _SCOPE.search(headers.get("Authorization", ""))
    service = scope.group(1) if scope else ""
    if headers.get("X-Amz-Target"):  # JSON protocol: "Service_20xx.Action"
        return service or "json", headers["X-Amz-Target"].rpartition(".")[2]
    form = dict(query)
    if "x-www-form-urlencoded" in headers.get("Content-Type", ""):
        form.update(parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True))
    if "Action" in form:  # query protocol: EC2, IAM, STS...
        return service or "query", form["Action"][0]
    return service or "s3", s3_operation(method, split.path, query, headers)


def error_response(service: str, method: str, rule: FaultRule) -> tuple[bytes, str]:
    """The body and content type ``service`` answers this error with."""
    request_id = str(uuid.uuid4())
    code, message = rule.code, rule.message or rule.code
    if method == "HEAD":
        return b"", "application/xml"
    if service == "ec2":
        text = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
                f"<Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>")
        return text.encode(), "text/xml;charset=UTF-8"
    if service == "s3":
        text = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
                f"<RequestId>{request_id}</RequestId><HostId>{uuid.uuid4().hex}</HostId></Error>")
        return text.encode(), "application/xml"
    if service == "json":
        return json.dumps({"__type": code, "message": message}).encode(), "application/x-amz-json-1.1"
    kind = "Sender" if rule.status < 500 else "Receiver"
    text = (f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>")
    return text.encode(), "text/xml"


class FaultProxy:
    """The proxy: ``start()``, ``add(rule)``, ``clear()``, ``requests``, ``fired(rule)``, ``stop()``."""

    def __init__(self, upstream: str):
        parsed = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parsed.hostname, parsed.port
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._fired: dict[int, int] = {}
        self._matched: dict[int, int] = {}  # matching calls seen, passed (``after``) or fired
        self._requests: list[tuple[str, str]] = []
        self._params: list[tuple[str, dict[str, str]]] = []  # (action, form parameters) of query-protocol calls (EC2, IAM)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._sockets: set[socket.socket] = set()
        self.url = ""

    # -- rules and records (any thread) ---------------------------------------

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
            self._fired.setdefault(id(rule), 0)
        return rule

    def remove(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if r is not rule]

    def clear(self) -> None:
        """Drop every rule (counts of fired rules stay readable)."""
        with self._lock:
            self._rules = []

    def fired(self, rule: FaultRule) -> int:
        with self._lock:
            return self._fired.get(id(rule), 0)

    @property
    def requests(self) -> list[tuple[str, str]]:
        """Every request seen, in order, as ``(service, action)``: a copy."""
        with self._lock:
            return list(self._requests)

    def params(self, action: str) -> list[dict[str, str]]:
        """The form parameters of every query-protocol call of ``action`` (``{"CpuOptions.CoreCount": "4", ...}``)."""
        with self._lock:
            return [dict(p) for a, p in self._params if a == action]

    def _note_params(self, action: str, headers, body: bytes) -> None:
        if "x-www-form-urlencoded" in headers.get("Content-Type", ""):
            form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
            with self._lock:
                self._params.append((action, form))

    def count(self, action: str, service: str | None = None) -> int:
        return sum(1 for s, a in self.requests if a == action and (service is None or s == service))

    def reset_log(self) -> None:
        with self._lock:
            self._requests = []

    def _decide(self, service: str, action: str, user_agent: str,
                form: dict[str, list[str]] | None = None) -> FaultRule | None:
        with self._lock:
            self._requests.append((service, action))
            for rule in self._rules:
                if not rule.matches(service, action, user_agent, form):
                    continue
                self._matched[id(rule)] = self._matched.get(id(rule), 0) + 1
                if self._matched[id(rule)] <= rule.after:
                    continue
                if rule.times is not None and self._fired[id(rule)] >= rule.times:
                    continue
                self._fired[id(rule)] += 1
                return rule
        return None

    # -- server -----------------------------------------------------------------

    def start(self) -> "FaultProxy":
        proxy = self

        class Handler(_ProxyHandler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="aws-fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            open_sockets, self._sockets = list(self._sockets), set()
        for sock in open_sockets:  # idle keep-alive connections of clients: end their handler threads
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=10)
        self._server = None


class _ProxyHandler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"  # keep-alive, as with AWS; every answer carries Content-Length
    timeout = 60

    def setup(self) -> None:
        super().setup()
        with self.owner._lock:
            self.owner._sockets.add(self.connection)

    def finish(self) -> None:
        with self.owner._lock:
            self.owner._sockets.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args) -> None:  # quiet
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailer fields of HTTP chunking: none expected, skipped
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        body = self._read_body()
        service, action = classify(self.command, self.path, self.headers, body)
        self.owner._note_params(action, self.headers, body)
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True) \
            if "x-www-form-urlencoded" in self.headers.get("Content-Type", "") else {}
        rule = self.owner._decide(service, action, self.headers.get("User-Agent", ""), form)
        if rule is not None and rule.forward:
            self._exchange(body)  # applied upstream; the answer is lost
            self._send_fault(service, rule)
        elif rule is not None:
            self._send_fault(service, rule)
        else:
            self._forward(body)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle

    def _send_fault(self, service: str, rule: FaultRule) -> None:
        payload, content_type = error_response(service, self.command, rule)
        request_id = str(uuid.uuid4())
        self.send_response(rule.status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-amz-request-id" if service == "s3" else "x-amzn-RequestId", request_id)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _forward(self, body: bytes) -> None:
        status, reason, headers, payload = self._exchange(body)
        self._send_upstream_answer(status, reason, headers, payload)

    def _exchange(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """The request sent on to the service: its status, reason, headers and body."""
        upstream = http.client.HTTPConnection(self.owner.upstream_host, self.owner.upstream_port, timeout=120)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                    upstream.putheader(name, value)
            if body or self.command in ("PUT", "POST", "PATCH"):
                upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            response = upstream.getresponse()
            payload = response.read()
            headers = response.getheaders()
            status, reason = response.status, response.reason
        finally:
            upstream.close()
        return status, reason, headers, payload

    def _send_upstream_answer(self, status: int, reason: str, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status, reason)
        has_length = False
        for name, value in headers:
            lower = name.lower()
            if lower in _HOP_BY_HOP or lower in ("date", "server"):
                continue
            if lower == "content-length":
                if self.command != "HEAD" and status not in (204, 304):
                    value = str(len(payload))  # what we send, whatever moto's framing was
                has_length = True
            self.send_header(name, value)
        if not has_length and self.command != "HEAD" and status not in (204, 304):
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(payload)


@pytest.fixture
def aws_faults(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A FaultProxy in front of the moto server; boto3 clients made in the test go through it."""
    proxy = FaultProxy(moto_server).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    try:
        yield proxy
    finally:
        proxy.stop()
