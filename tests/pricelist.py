"""A loopback Price List API: replays ``GetProducts`` answers, reached through ``AWS_ENDPOINT_URL_PRICING``.

moto has no Price List API. This server answers ``AWSPriceListService.GetProducts``
(JSON 1.1 over HTTP, as boto3's ``pricing`` client speaks it) with the answer
kept in ``tests/data/pricing-get-products-us-east-1.json`` for the asked
``instanceType``, and an empty ``PriceList`` for a type it has none for.
``deny = True`` makes it answer as AWS does to an identity without
``pricing:GetProducts``. One server per test process; ``requests`` counts calls.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ANSWERS = json.loads((Path(__file__).parent / "data" / "pricing-get-products-us-east-1.json").read_text())
PRICES = {"t3.micro": 0.0104, "t3.small": 0.0208, "c5.large": 0.085, "m5.large": 0.096}  # what the answers say


class PriceListServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.deny = False
        self.requests: list[dict] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: PriceListServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        target = self.headers.get("X-Amz-Target", "")
        self.server.requests.append({"target": target, **request})
        if self.server.deny:
            self._answer(400, {"__type": "AccessDeniedException",
                               "Message": "User: arn:aws:iam::123456789012:user/test is not authorized to perform: "
                                          "pricing:GetProducts because no identity-based policy allows the "
                                          "pricing:GetProducts action"})
            return
        if not target.endswith(".GetProducts"):
            self._answer(400, {"__type": "InvalidParameterException", "Message": f"unknown action {target}"})
            return
        filters = {f["Field"]: f["Value"] for f in request.get("Filters", [])}
        answer = ANSWERS.get(filters.get("instanceType", "")) if filters.get("regionCode") == "us-east-1" else None
        self._answer(200, answer or {"FormatVersion": "aws_v1", "PriceList": []})


_server: PriceListServer | None = None


def price_list_server() -> PriceListServer:
    global _server
    if _server is None:
        _server = PriceListServer()
    return _server
