"""The one boto3 S3 client an ``S3Storage`` uses: its retries, connection pool, and two savings per request.

A small GetObject costs the client about as much CPU as the server: botocore
parses every response timestamp with dateutil's general parser and rebuilds its
structured User-Agent, sanitising it character by character, twice per request.
Here both are done once or cheaply, through botocore's own settings (the AWS CLI
sets the timestamp parser the same way); everything else is botocore's.
"""

from __future__ import annotations

import email.utils
import platform
from datetime import datetime

import boto3
import botocore
import botocore.handlers
import botocore.session
import botocore.utils

from burst.retry import aws_config

POOL_WORKERS = 32  # the most threads that share the client in one transfer; its connection pool is larger


def parse_timestamp(value: str | int | float) -> datetime:
    """S3's timestamps -- ISO 8601 in listings, RFC 7231 dates in headers -- without dateutil; others as botocore does."""
    if isinstance(value, str):
        try:
            if value[:1].isdigit():
                parsed = datetime.fromisoformat(value)  # 2026-11-22T15:00:00.000Z
            else:
                parsed = email.utils.parsedate_to_datetime(value)  # Sun, 22 Nov 2026 15:00:00 GMT
            if parsed.tzinfo is not None:
                return parsed
        except (TypeError, ValueError):
            pass
    return botocore.utils.parse_timestamp(value)


def user_agent() -> str:
    """The User-Agent, made once per client, with the same facts as botocore's: SDK, language, OS."""
    from burst import __version__

    return (f"Boto3/{boto3.__version__} md/Botocore#{botocore.__version__} lang/python#{platform.python_version()} "
            f"os/{platform.system().lower()}#{platform.release()} burst/{__version__}")


def make_client(profile: str | None, region: str | None, max_concurrency: int, user_agent_extra: str = "",
                max_attempts: int = 10, endpoint_url: str | None = None):
    """An S3 client whose pool has a connection for every thread of any one transfer (at ``endpoint_url`` if given)."""
    core = botocore.session.Session()
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_timestamp)
    session = boto3.session.Session(profile_name=profile, region_name=region, botocore_session=core)
    client = session.client(
        "s3",
        endpoint_url=endpoint_url,
        config=aws_config(  # the one retry policy (burst.retry)
            max_attempts=max_attempts,
            connect_timeout=20,
            read_timeout=120,
            user_agent=user_agent(),
            user_agent_extra=user_agent_extra or None,  # "burst-worker" on machines (CloudTrail shows who did what)
            max_pool_connections=max(max_concurrency, POOL_WORKERS) + 2,
        ),
    )
    # No "Expect: 100-continue": a store that answers such a request at once with its final status
    # (SeaweedFS does for an empty body, any store may for a refused condition) leaves the botocore
    # of the nodes' runtime (1.42, burst.control.runtime; later releases fixed it) reading the next
    # answer on that connection with the old status line: that request waits out its read timeout.
    client.meta.events.unregister("before-call.s3", botocore.handlers.add_expect_header)
    return client
