"""Names and small helpers every AWS set-up module shares: what a job's resources are called, error codes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from botocore.exceptions import ClientError

from burst.retry import aws_config

DEFAULT_REGION = "us-east-1"
SSH_PORT = 22
CLIENT_CONFIG = aws_config(connect_timeout=20, read_timeout=60)  # the one retry policy (burst.retry)

_BAD_CREDENTIAL_CODES = {
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "AuthFailure",
    "UnauthorizedOperation",
    "InvalidAccessKeyId",
    "AccessDenied",
}


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", "")) or str(error)


# -- names -------------------------------------------------------------------


def _limited(name: str, limit: int) -> str:
    """``name`` if it fits, else a prefix of it and a short hash (still unique per job)."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9]}-{digest}"


def key_pair_name(job: str) -> str:
    return f"burst-{job}"


def security_group_name(job: str) -> str:
    return f"burst-{job}"


def node_role_name(job: str) -> str:
    """Name of the role and of its instance profile (IAM allows 64 characters)."""
    return _limited(f"burst-{job}-node", 64)


def key_file_path(job: str, key_dir: str | os.PathLike) -> Path:
    return Path(key_dir).expanduser() / f"{job}.pem"


def bucket_name(job: str, bucket: str | None = None) -> str:
    return bucket or job



def job_tags(job: str) -> list[dict[str, str]]:
    return [{"Key": "job", "Value": job}, {"Key": "burst", "Value": "1"}]
