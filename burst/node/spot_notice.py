"""The spot interruption notice, read on a spot machine from its instance metadata (IMDSv2).

AWS announces the end of a spot machine two minutes ahead at
``/latest/meta-data/spot/instance-action`` (404 until then). The worker polls it
every ``POLL_SECONDS`` and, on a notice, gives its rows back at once instead of
letting their leases run out.

The endpoint is the standard ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` (default the
link-local address, which only exists on EC2), and ``AWS_EC2_METADATA_DISABLED=true``
turns the watch off, as it does for botocore. Only the worker on an EC2 spot
machine ever starts a watch. Standard library only.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from typing import Callable

POLL_SECONDS = 5.0
DEFAULT_ENDPOINT = "http://169.254.169.254/"
TOKEN_TTL = 21600  # seconds an IMDSv2 token is valid; renewed a minute before it ends
TIMEOUT = 2.0


class MetadataService:
    """A minimal IMDSv2 client: a session token (PUT), then GETs that carry it."""

    def __init__(self, endpoint: str | None = None):
        base = endpoint or os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or DEFAULT_ENDPOINT
        self.base = base.rstrip("/") + "/"
        self._token: str | None = None
        self._token_until = 0.0

    def _token_header(self, now: float) -> dict[str, str]:
        if self._token is None or now >= self._token_until:
            request = urllib.request.Request(self.base + "latest/api/token", method="PUT",
                                             headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL)})
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                self._token = response.read().decode().strip()
            self._token_until = now + TOKEN_TTL - 60
        return {"X-aws-ec2-metadata-token": self._token}

    def get(self, path: str, now: float) -> str | None:
        """The text at ``latest/meta-data/<path>``; None when it is not there (404)."""
        request = urllib.request.Request(self.base + "latest/meta-data/" + path, headers=self._token_header(now))
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return response.read().decode()
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            if error.code == 401:  # the token expired early: a new one next time
                self._token = None
            raise


def interruption_notice(service: MetadataService, now: float) -> dict | None:
    """The notice (``{"action": "terminate", "time": ...}``) once AWS gave one, else None."""
    text = service.get("spot/instance-action", now)
    if text is None:
        return None
    try:
        notice = json.loads(text)
    except ValueError:
        notice = {"action": text.strip()}
    return notice if isinstance(notice, dict) else {"action": str(notice)}


def watch(stop: threading.Event, on_notice: Callable[[dict], None], log: Callable[[str], None],
          poll_seconds: float = POLL_SECONDS) -> threading.Thread | None:
    """Poll for a notice until ``stop`` is set; call ``on_notice`` once. None if metadata is disabled."""
    if os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        log("AWS_EC2_METADATA_DISABLED=true: this spot machine will not see an interruption notice")
        return None
    service = MetadataService()

    def loop() -> None:
        import time

        failures = 0
        while not stop.wait(poll_seconds):
            try:
                notice = interruption_notice(service, time.time())
                failures = 0
            except (OSError, urllib.error.URLError) as error:  # the metadata service hiccuped: the next poll asks again
                failures += 1
                if failures in (1, 10, 100):
                    log(f"reading the spot interruption notice failed ({failures}x): {error}")
                continue
            if notice is not None:
                on_notice(notice)
                return

    thread = threading.Thread(target=loop, name="spot-notice", daemon=True)
    thread.start()
    return thread
