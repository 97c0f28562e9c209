"""One true sentence for an AWS call that still fails after botocore's retries (throttling, 5xx, ...).

The entry points turn such an error into this message and exit status 1, never
a traceback: which call failed and how, and how to go on. Nothing burst keeps
is lost by such a failure (every step is idempotent and resumable).
"""

from __future__ import annotations

from burst.errors import credentials_expired, live_sentence
from burst.retry import credentials_expired as expired


def is_aws_error(error: BaseException) -> bool:
    """botocore's ClientError and BotoCoreError (connection, endpoint, credentials...), without importing botocore."""
    return any(cls.__module__.startswith("botocore") for cls in type(error).__mro__ if cls is not Exception)


def aws_failure(job: str | None, error: BaseException, live: list[str] | None = None) -> str:
    """``live``: ids of the job's machines still running (None when unknown)."""
    response = getattr(error, "response", None) or {}
    code = response.get("Error", {}).get("Code", "") or type(error).__name__
    detail = response.get("Error", {}).get("Message", "") or str(error)
    operation = getattr(error, "operation_name", "") or "an AWS call"
    attempts = response.get("ResponseMetadata", {}).get("RetryAttempts")
    tried = f" after {attempts + 1} attempts" if isinstance(attempts, int) and attempts else ""
    if expired(error):
        return credentials_expired(f"{operation}: {code}: {detail}", job)
    text = f"AWS answered {operation} with {code}{tried}: {detail.rstrip('.')}."
    if job is None:
        return text + " Nothing was changed by the failed call; run the command again."
    return f"{text} {live_sentence(job, live)} Run the same command again to resume where it stopped."

