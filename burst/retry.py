"""The one retry/backoff policy: growing, capped, jittered delays, and a call retried within a budget.

Standard library only: the node worker imports it. AWS calls get botocore's own
retries on top (``aws_config``), which this module builds too, so the whole code
agrees on one mode.
"""

from __future__ import annotations

import random
import time
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")

RETRY_MODE = "standard"  # botocore's: exponential backoff with jitter, throttling and 5xx retried
REPORT_EVERY = 30.0  # seconds between the messages of a long wait (e.g. for EC2 capacity)


# Answers no retry can pass: credentials that expired (a session token, an SSO session)
EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})  # RequestExpired: EC2's word
EXPIRED_SSO_ERRORS = frozenset({"UnauthorizedSSOTokenError", "TokenRetrievalError", "SSOTokenLoadError"})


def credentials_expired(error: BaseException) -> bool:
    """Whether ``error`` (botocore's, seen by its code or class name) says the AWS credentials expired."""
    response = getattr(error, "response", None) or {}
    code = response.get("Error", {}).get("Code", "") if isinstance(response, dict) else ""
    return code in EXPIRED_CODES or any(cls.__name__ in EXPIRED_SSO_ERRORS for cls in type(error).__mro__)


def backoff(first: float = 0.2, factor: float = 1.5, cap: float = 5.0, jitter: float = 0.1) -> Iterator[float]:
    """Delays: quick at first (a fast answer is seen at once), then gentler, never above ``cap``."""
    delay = first
    while True:
        yield delay * (1 + random.uniform(-jitter, jitter)) if jitter else delay
        delay = min(cap, delay * factor)


# error codes of a request refused as such: the same request is refused again, however often it is sent
# (NoSuchBucket: the job's bucket is gone, or the machine looks for it on another store than the dispatcher's)
REFUSALS = {"AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NotImplemented",
            "UnauthorizedOperation", "AuthFailure", "InvalidArgument", "NoSuchBucket"}
# botocore refuses the call before sending it; the worker's own code is wrong (or does not run on this Python);
# BucketNotFound: burst.storage.s3's word for NoSuchBucket
UNFIXABLE_ERRORS = ("ParamValidationError", "UnknownParameterError", "UnknownClientMethodError", "BucketNotFound")


def unfixable(error: BaseException) -> str | None:
    """Why no retry can fix ``error``, or None for a fault that passes (5xx, throttling, timeouts, a lost connection)."""
    code = str((getattr(error, "response", None) or {}).get("Error", {}).get("Code", ""))
    if code in REFUSALS:
        return f"{code}: {error}"
    if type(error).__name__ in UNFIXABLE_ERRORS or isinstance(error, (ImportError, SyntaxError, NameError,
                                                                        AttributeError, TypeError)):
        return f"{type(error).__name__}: {error}"
    return None


def retry_call(function: Callable[[], T], *, seconds: float, retry_on: tuple[type[BaseException], ...] = (Exception,),
               give_up_on: tuple[type[BaseException], ...] = (), on_retry: Callable[[BaseException, float], None] | None = None,
               retry_if: Callable[[BaseException], bool] | None = None, tries: int | None = None,
               first: float = 0.5, cap: float = 15.0, sleep: Callable[[float], None] = time.sleep) -> T:
    """``function()``, retried on ``retry_on`` (except ``give_up_on``) with backoff for up to ``seconds``.

    The last error propagates once the budget is spent (``seconds``, and ``tries`` calls
    when given), and at once when no retry can fix it (``unfixable``: a refusal, a bad
    parameter, a bug) or when ``retry_if(error)`` says it is not one of those retried
    (e.g. one error code of a ClientError). ``on_retry(error, delay)`` lets a caller log
    each retry.
    """
    deadline = time.monotonic() + seconds
    for attempt, delay in enumerate(backoff(first=first, factor=2.0, cap=cap, jitter=0.2), start=1):
        try:
            return function()
        except give_up_on:
            raise
        except retry_on as error:
            if (time.monotonic() + delay > deadline or unfixable(error) is not None
                    or (retry_if is not None and not retry_if(error)) or (tries is not None and attempt >= tries)):
                raise
            if on_retry is not None:
                on_retry(error, delay)
            sleep(delay)
    raise AssertionError("unreachable")


def wait_saying(seconds: float, say: Callable[[float], None], *, sleep: Callable[[float], None] = time.sleep,
                every: float = REPORT_EVERY) -> None:
    """Wait ``seconds`` in steps of at most ``every``, calling ``say(seconds left)`` before each step.

    A long wait is never silent: the user hears from it every ``every`` seconds.
    """
    left = seconds
    while left > 0:
        say(left)
        step = min(every, left)
        sleep(step)
        left -= step


def aws_config(max_attempts: int = 10, **options):
    """The botocore ``Config`` of every AWS client burst makes (imports botocore lazily)."""
    from botocore.config import Config

    return Config(retries={"mode": RETRY_MODE, "max_attempts": max_attempts}, **options)
