"""Removing what ``prepare`` made for a job, but the bucket (it holds the results)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import boto3
from botocore.exceptions import ClientError

from burst.errors import BurstError, command_name
from burst.providers.aws_credentials import check_credentials, make_session
from burst.providers.aws_firewall import find_security_group
from burst.providers.aws_names import (
    CLIENT_CONFIG,
    _code,
    key_file_path,
    key_pair_name,
    node_role_name,
    security_group_name,
)
from burst.retry import backoff


def teardown(
    job: str,
    options=None,
    session: boto3.session.Session | None = None,
    *,
    wait_seconds: float = 180.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Delete the job's security group, role and instance profile, key pair and key file.

    The bucket stays (it holds the results). Things already gone are fine.
    The security group can only go once the job's machines are terminated:
    ``DependencyViolation`` is retried for up to ``wait_seconds``. Returns what
    was removed, as short sentences.
    """
    if session is None:
        session = make_session(getattr(options, "region", None), getattr(options, "profile", None))
        check_credentials(session, getattr(options, "profile", None))
    key_dir = getattr(options, "key_dir", None) or str(Path.home() / ".ssh")
    ec2 = session.client("ec2", config=CLIENT_CONFIG)
    iam = session.client("iam", config=CLIENT_CONFIG)
    removed: list[str] = []
    try:
        group = find_security_group(ec2, job)
        if group is not None:
            deadline = time.monotonic() + wait_seconds
            delays = backoff(first=5.0, factor=2.0, cap=30.0, jitter=0)  # the one policy (burst.retry)
            while True:
                try:
                    ec2.delete_security_group(GroupId=group["GroupId"])
                    removed.append(f"security group {security_group_name(job)} ({group['GroupId']})")
                    break
                except ClientError as error:
                    code = _code(error)
                    if code == "InvalidGroup.NotFound":
                        break
                    if code != "DependencyViolation":
                        raise
                    delay = next(delays)
                    if time.monotonic() + delay > deadline:
                        raise BurstError(
                            f"the security group {group['GroupId']} of job {job} is still used by "
                            f"machines; run `{command_name()} terminate {job}`, wait until they are "
                            f"gone, and clean up again."
                        ) from None
                    sleep(delay)

        name = node_role_name(job)
        try:
            profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        except ClientError as error:
            if _code(error) != "NoSuchEntity":
                raise
        else:
            for role in profile.get("Roles", []):
                _ignore_missing(iam.remove_role_from_instance_profile, InstanceProfileName=name, RoleName=role["RoleName"])
            if _ignore_missing(iam.delete_instance_profile, InstanceProfileName=name):
                removed.append(f"instance profile {name}")
        try:
            policies = iam.list_role_policies(RoleName=name)["PolicyNames"]
        except ClientError as error:
            if _code(error) != "NoSuchEntity":
                raise
        else:
            for policy in policies:
                _ignore_missing(iam.delete_role_policy, RoleName=name, PolicyName=policy)
            for attached in iam.list_attached_role_policies(RoleName=name).get("AttachedPolicies", []):
                _ignore_missing(iam.detach_role_policy, RoleName=name, PolicyArn=attached["PolicyArn"])
            if _ignore_missing(iam.delete_role, RoleName=name):
                removed.append(f"IAM role {name}")

        key_name = key_pair_name(job)
        try:
            present = ec2.describe_key_pairs(KeyNames=[key_name])["KeyPairs"]
        except ClientError as error:
            if _code(error) != "InvalidKeyPair.NotFound":
                raise
            present = []
        if present:
            ec2.delete_key_pair(KeyName=key_name)
            removed.append(f"key pair {key_name}")
        path = key_file_path(job, key_dir)
        if path.exists():
            path.unlink()
            removed.append(f"key file {path}")
    finally:
        ec2.close()
        iam.close()
    return removed


def _ignore_missing(call: Callable[..., Any], **kwargs: Any) -> bool:
    """Call; False if the thing was already gone."""
    try:
        call(**kwargs)
    except ClientError as error:
        if _code(error) == "NoSuchEntity":
            return False
        raise
    return True


