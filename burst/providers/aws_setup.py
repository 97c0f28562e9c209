"""What a job's EC2 machines need once, created idempotently (``cloud_setup.py``).

* credentials and region: the standard boto3 chain (``--profile``/``AWS_PROFILE``,
  environment, SSO, config files); region from ``--region``, the AWS config, else
  ``us-east-1``;
* key pair ``burst-<job>``: private key in ``<key_dir>/<job>.pem`` (0600);
* security group ``burst-<job>`` in the VPC of ``--subnet`` (else the default VPC): SSH (tcp/22) from one CIDR
  only, the caller's public address ``/32`` unless ``--ssh-cidr`` says otherwise;
* IAM role and instance profile ``burst-<job>-node``: the nodes' only powers are
  the job's bucket and terminating machines tagged ``job=<job>`` (or, with
  ``--instance-profile NAME``, an existing profile: no role is made);
* the bucket (``--bucket`` or the job name), private.

Each job has its module: ``aws_credentials``, ``aws_firewall`` (key pair and
security group), ``aws_iam``, ``aws_bucket``, ``aws_teardown`` (``teardown`` removes all
of that but the bucket); ``aws_names`` holds the names. This one puts them together.
Only the dispatcher runs this module; it never sends credentials anywhere.
"""


from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

from burst.errors import UserError
from burst.providers.aws_bucket import check_adoption, ensure_bucket
from burst.providers.aws_credentials import check_credentials, credentials_help, make_session
from burst.providers.aws_firewall import (
    caller_cidr,
    check_key_pair,
    default_vpc_id,
    ensure_key_pair,
    ensure_security_group,
    find_security_group,
    validate_cidr,
)
from burst.providers.aws_iam import NODE_POLICY_NAME, ensure_instance_profile, existing_profile, node_policy, trust_policy
from burst.providers.aws_names import (
    _BAD_CREDENTIAL_CODES,
    CLIENT_CONFIG,
    DEFAULT_REGION,
    _code,
    _message,
    bucket_name,
    job_tags,
    key_file_path,
    key_pair_name,
    node_role_name,
    security_group_name,
)
from burst.providers.aws_teardown import teardown
from burst.providers.ec2_network import Subnet, resolve_subnets


@dataclass
class JobResources:
    """What ``prepare`` made or found; RunInstances needs all of it."""

    job: str
    region: str
    account: str
    partition: str
    key_name: str
    key_file: Path
    security_group_id: str
    ssh_cidr: str
    instance_profile_name: str
    instance_profile_arn: str
    bucket: str
    node_role_id: str = ""  # the profile's role's unique id: its machines' aws:userid is <it>:<instance id>
    subnets: list[Subnet] = field(default_factory=list)  # where machines go, in the order tried
    profile_created: bool = False  # a new instance profile needs seconds before RunInstances accepts it
    bucket_created: bool = False
    warnings: list[str] = field(default_factory=list)  # e.g. what an S3-compatible store does not implement


def prepare(
    job: str,
    options,
    session: boto3.session.Session | None = None,
    identity: dict[str, str] | None = None,
) -> JobResources:
    """Check credentials, then make (or find) key pair, security group, role and bucket.

    ``options`` is a ``ProviderOptions``. Nothing is created before the
    credentials and the SSH address are known to be good.
    """
    session = session or make_session(options.region, options.profile)
    identity = identity or check_credentials(session, options.profile)
    cidr = caller_cidr(options.ssh_cidr, allow_wide=getattr(options, "allow_wide_ssh", False))
    region = session.region_name or DEFAULT_REGION
    tags = job_tags(job)
    ec2 = session.client("ec2", config=CLIENT_CONFIG)
    iam = session.client("iam", config=CLIENT_CONFIG)
    s3 = session.client("s3", config=CLIENT_CONFIG)
    bucket = bucket_name(job, options.bucket)
    warnings: list[str] = []
    try:
        # Read-only checks first: a UserError here leaves nothing behind.
        check_key_pair(ec2, job, options.key_dir)
        given = getattr(options, "instance_profile", None)
        existing = existing_profile(iam, given) if given else None  # before anything is made: (ARN, role id)
        vpc_id, subnets = resolve_subnets(ec2, list(getattr(options, "subnets", None) or []))
        untagged = check_adoption(s3, bucket, job, bool(getattr(options, "adopt_bucket", False)))
        bucket_created = ensure_bucket(s3, bucket, region, tags, warnings, tag_anyway=untagged)
        key_name, key_file = ensure_key_pair(ec2, job, options.key_dir, tags)
        group_id = ensure_security_group(ec2, job, cidr, tags, vpc_id)
        if existing is not None:
            profile_name, (profile_arn, role_id), profile_created = given, existing, False
        else:
            profile_name, profile_arn, profile_created, role_id = ensure_instance_profile(iam, job, bucket, identity["partition"], tags)
    except ClientError as error:
        if _code(error) in _BAD_CREDENTIAL_CODES:
            raise UserError(
                f"Your AWS identity {identity['arn']} may not {error.operation_name}: {_message(error)}. "
                "burst needs EC2 (instances, key pairs, security groups), IAM (roles, instance "
                "profiles, PassRole) and S3 (buckets) permissions; ask your administrator, or use "
                "another --profile."
            ) from None
        raise  # throttling, 5xx after botocore's retries: the entry point says what failed and how to resume
    finally:
        for client in (ec2, iam, s3):
            client.close()
    return JobResources(
        job=job,
        region=region,
        account=identity["account"],
        partition=identity["partition"],
        key_name=key_name,
        key_file=key_file,
        security_group_id=group_id,
        ssh_cidr=cidr,
        instance_profile_name=profile_name,
        instance_profile_arn=profile_arn,
        bucket=bucket,
        node_role_id=role_id,
        subnets=subnets,
        profile_created=profile_created,
        bucket_created=bucket_created,
        warnings=warnings,
    )


__all__ = [
    "JobResources",
    "bucket_name",
    "caller_cidr",
    "credentials_help",
    "default_vpc_id",
    "find_security_group",
    "job_tags",
    "trust_policy",
    "NODE_POLICY_NAME",
    "CLIENT_CONFIG",
    "DEFAULT_REGION",
    "check_key_pair",
    "check_credentials",
    "ensure_bucket",
    "ensure_instance_profile",
    "ensure_key_pair",
    "ensure_security_group",
    "key_file_path",
    "key_pair_name",
    "make_session",
    "node_policy",
    "node_role_name",
    "prepare",
    "security_group_name",
    "teardown",
    "validate_cidr",
]
