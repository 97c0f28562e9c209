"""What the worker's parts share: its log line, its patient storage retry, a row it runs, its exit statuses.

Standard library and storage only (the worker runs on machines with Python 3.9).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from burst.node.bucket_view import HeldClaim
from burst.records import utc_now
from burst.retry import retry_call
from burst.storage import KeyNotFound, PreconditionFailed

WORKER_AGENT = "burst-worker"  # in the user agent of the worker's AWS requests
CANNOT_WORK = 3  # the exit status of a worker that could not work (an error no retry fixes)
# botocore's tries of one S3 request on a machine (a blip): the worker's own retries wait out the rest, so a
# heartbeat is never held for a minute inside one request, and renews within seconds of a bucket's return
NODE_S3_ATTEMPTS = 3


def log(message: str) -> None:
    print(f"{utc_now()} {message}", file=sys.stderr, flush=True)


def _retry_storage(function, what: str, seconds: float):
    """``function()`` retried on transient faults; a lost race or a missing key is an answer, not a fault."""
    return retry_call(function, seconds=seconds, give_up_on=(PreconditionFailed, KeyNotFound),
                      on_retry=lambda error, delay: log(f"{what}: {type(error).__name__}: {error}; retrying in {delay:.1f} s"))


@dataclass
class RowRun:
    held: HeldClaim
    command: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    process: subprocess.Popen | None = None
    lost: bool = False
    interrupted: bool = False  # a spot interruption notice came: give the row back
    finished: bool = False
    written: float = field(default_factory=time.time)  # when this worker last wrote the claim
    failing_since: float | None = None  # time.monotonic() of the first of the renewals failing since the last success
