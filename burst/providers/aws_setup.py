"""What a job's EC2 machines need once, created idempotently (``cloud_setup.py``).

* credentials and region: the standard boto3 chain (``--profile``/``AWS_PROFILE``,
  environment, SSO, config files); region from ``--region``, the AWS config, else
  ``us-east-1``;
* key pair ``burst-<job>``: private key in ``<key_dir>/<job>.pem`` (0600);
* security group ``burst-<job>`` in the default VPC: SSH (tcp/22) from one CIDR
  only, the caller's public address ``/32`` unless ``--ssh-cidr`` says otherwise;
* IAM role and instance profile ``burst-<job>-node``: the nodes' only powers are
  the job's bucket and terminating machines tagged ``job=<job>``;
* the bucket (``--bucket`` or the job name), private.

``teardown`` removes all of that but the bucket (it holds the results).
Only the dispatcher runs this module; it never sends credentials anywhere.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    CredentialRetrievalError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    SSOError,
    TokenRetrievalError,
    UnauthorizedSSOTokenError,
)

from burst.errors import BurstError, UserError

DEFAULT_REGION = "us-east-1"
CHECKIP_URL = "https://checkip.amazonaws.com"  # only asked when no --ssh-cidr is given
CHECKIP_TIMEOUT = 5.0
SSH_PORT = 22
CLIENT_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 10}, connect_timeout=20, read_timeout=60)

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


# -- session and credentials -------------------------------------------------


def credentials_help(detail: str, profile: str | None = None) -> UserError:
    which = f"the AWS profile {profile!r}" if profile else "the default AWS credentials"
    return UserError(
        f"No usable AWS credentials ({detail}) with {which}. burst uses the standard AWS "
        "credential chain: run `aws configure` to store access keys, or `aws sso login "
        "--profile NAME` for IAM Identity Center (SSO) and then pass `--profile NAME` (or set "
        "AWS_PROFILE=NAME); if the keys are in the environment, check AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary keys). `aws sts "
        "get-caller-identity` must work before burst can."
    )


def make_session(region: str | None = None, profile: str | None = None) -> boto3.session.Session:
    try:
        session = boto3.session.Session(profile_name=profile or None, region_name=region or None)
    except ProfileNotFound:
        raise UserError(
            f"The AWS profile {profile!r} is not in your AWS config (~/.aws/config or "
            "~/.aws/credentials). Create it with `aws configure --profile NAME` or `aws configure "
            "sso`, or pass the name of an existing profile with --profile."
        ) from None
    if not session.region_name:
        session = boto3.session.Session(profile_name=profile or None, region_name=DEFAULT_REGION)
    return session


def check_credentials(session: boto3.session.Session, profile: str | None = None) -> dict[str, str]:
    """``sts get-caller-identity``: account, ARN, partition; a UserError when credentials fail."""
    try:
        identity = session.client("sts", config=CLIENT_CONFIG).get_caller_identity()
    except NoCredentialsError:
        raise credentials_help("none were found", profile) from None
    except PartialCredentialsError as error:
        raise credentials_help(f"incomplete: {error}", profile) from None
    except (UnauthorizedSSOTokenError, TokenRetrievalError, SSOError) as error:
        raise credentials_help(f"the SSO session has expired or is missing: {error}", profile) from None
    except CredentialRetrievalError as error:
        raise credentials_help(str(error), profile) from None
    except ClientError as error:
        if _code(error) in _BAD_CREDENTIAL_CODES:
            raise credentials_help(f"AWS refused them: {_code(error)}: {_message(error)}", profile) from None
        raise
    arn = identity.get("Arn", "")
    partition = arn.split(":")[1] if arn.count(":") >= 2 else "aws"
    return {"account": identity.get("Account", ""), "arn": arn, "partition": partition or "aws"}


# -- caller address ----------------------------------------------------------


def validate_cidr(text: str) -> str:
    """A normalised CIDR; a bare address becomes ``/32`` (``/128``). Rejects ``/0``."""
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise UserError(
            f"--ssh-cidr {text!r} is not an IP address or CIDR block: give your public address "
            "as 203.0.113.7/32 (or a range such as 203.0.113.0/24)."
        ) from None
    if network.prefixlen == 0:
        raise UserError(
            f"--ssh-cidr {text} would open SSH to the whole internet; give your own address "
            "(203.0.113.7/32) or your network's range instead."
        )
    return str(network)


def caller_cidr(ssh_cidr: str | None, *, url: str | None = None, timeout: float = CHECKIP_TIMEOUT) -> str:
    """``ssh_cidr`` if given; else this machine's public IPv4 address ``/32`` from checkip.

    checkip is the only request outside AWS that burst makes, and only when
    ``--ssh-cidr`` is not given.
    """
    if ssh_cidr:
        return validate_cidr(ssh_cidr)
    import urllib.request

    url = url or CHECKIP_URL
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            text = response.read(100).decode("ascii", "replace").strip()
        address = ipaddress.ip_address(text)
    except (OSError, ValueError) as error:
        raise UserError(
            f"Could not find your public IP address from {url} ({error}); it is needed to allow "
            "SSH only from you. Give it with --ssh-cidr, e.g. --ssh-cidr 203.0.113.7/32 (see "
            "`curl https://checkip.amazonaws.com`)."
        ) from None
    return f"{address}/{address.max_prefixlen}"


# -- key pair ----------------------------------------------------------------


def _public_key_of(path: Path) -> str | None:
    """``"<type> <base64>"`` of a private key file; None if it cannot be read as one."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    data = path.read_bytes()
    for load in (serialization.load_ssh_private_key, serialization.load_pem_private_key):
        try:
            key = load(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        return " ".join(public.decode().split()[:2])
    return None


def _write_private_key(path: Path, material: str) -> None:
    """Create ``path`` 0600 from the start (O_EXCL: never overwrite, never world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(material if material.endswith("\n") else material + "\n")
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def check_key_pair(ec2, job: str, key_dir: str | os.PathLike) -> bool:
    """True if key pair and key file both exist and match, False if neither; else a UserError.

    Never launch with a key nobody holds, nor trust a key file of another pair.
    """
    name = key_pair_name(job)
    path = key_file_path(job, key_dir)
    try:
        found = ec2.describe_key_pairs(KeyNames=[name], IncludePublicKey=True)["KeyPairs"]
    except ClientError as error:
        if _code(error) != "InvalidKeyPair.NotFound":
            raise
        found = []
    in_aws = bool(found)
    on_disk = path.exists()
    region = ec2.meta.region_name
    delete_pair = f"`aws ec2 delete-key-pair --key-name {name} --region {region}`"
    if in_aws and on_disk:
        aws_public = " ".join(str(found[0].get("PublicKey", "")).split()[:2])
        local_public = _public_key_of(path)
        if local_public is None:
            raise UserError(
                f"{path} is not a readable, unencrypted private key, but it should hold the key "
                f"of the key pair {name}. Restore the file burst wrote, or delete the key pair "
                f"({delete_pair}) and move the file away, and burst creates a new pair."
            )
        if aws_public and local_public != aws_public:
            raise UserError(
                f"{path} does not belong to the key pair {name} in {region} (their public keys "
                f"differ), so nobody could log in to the machines. Restore the matching key file, "
                f"or delete the key pair ({delete_pair}) and move the file {path} away, and burst "
                f"creates a new pair."
            )
        return True
    if in_aws:
        raise UserError(
            f"The key pair {name} exists in {region} but its private key {path} is missing, so "
            f"nobody could log in to new machines. Restore the file (or give the folder that "
            f"holds it with --key-dir), or delete the key pair with {delete_pair} (after "
            f"`python -m burst terminate {job}` if machines of the job still run) and burst "
            f"creates a new one."
        )
    if on_disk:
        raise UserError(
            f"The key file {path} exists but the key pair {name} is not in {region}: the file "
            f"may be from another region or an earlier job of the same name. Give the right "
            f"--region, or move the file away (`mv {path} {path}.old`) and burst creates a new "
            f"key pair."
        )
    return False


def ensure_key_pair(ec2, job: str, key_dir: str | os.PathLike, tags: list[dict[str, str]]) -> tuple[str, Path]:
    """Key pair ``burst-<job>`` and its private key file ``<key_dir>/<job>.pem`` (0600)."""
    name = key_pair_name(job)
    path = key_file_path(job, key_dir)
    if check_key_pair(ec2, job, key_dir):
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        return name, path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    created = ec2.create_key_pair(
        KeyName=name,
        KeyType="ed25519",
        TagSpecifications=[{"ResourceType": "key-pair", "Tags": tags}],
    )
    try:
        _write_private_key(path, created["KeyMaterial"])
    except BaseException:
        ec2.delete_key_pair(KeyName=name)  # nobody holds it: do not leave it behind
        raise
    return name, path


# -- security group ----------------------------------------------------------


def default_vpc_id(ec2) -> str:
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        region = ec2.meta.region_name
        raise UserError(
            f"The region {region} has no default VPC, which burst launches into. Create one with "
            f"`aws ec2 create-default-vpc --region {region}`, or use another --region."
        )
    return vpcs[0]["VpcId"]


def find_security_group(ec2, job: str, vpc_id: str | None = None) -> dict[str, Any] | None:
    filters = [{"Name": "group-name", "Values": [security_group_name(job)]}]
    if vpc_id:
        filters.append({"Name": "vpc-id", "Values": [vpc_id]})
    groups = ec2.describe_security_groups(Filters=filters)["SecurityGroups"]
    return groups[0] if groups else None


def _ssh_permission(cidr: str) -> dict[str, Any]:
    description = "burst: SSH from the dispatcher"
    permission: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": SSH_PORT, "ToPort": SSH_PORT}
    if ipaddress.ip_network(cidr).version == 6:
        permission["Ipv6Ranges"] = [{"CidrIpv6": cidr, "Description": description}]
    else:
        permission["IpRanges"] = [{"CidrIp": cidr, "Description": description}]
    return permission


def _is_only_ssh_from(permissions: list[dict[str, Any]], cidr: str) -> bool:
    if len(permissions) != 1:
        return False
    rule = permissions[0]
    v4 = [r.get("CidrIp") for r in rule.get("IpRanges", [])]
    v6 = [r.get("CidrIpv6") for r in rule.get("Ipv6Ranges", [])]
    return (
        rule.get("IpProtocol") == "tcp"
        and rule.get("FromPort") == SSH_PORT
        and rule.get("ToPort") == SSH_PORT
        and sorted(v4 + v6) == [cidr]
        and not rule.get("UserIdGroupPairs")
        and not rule.get("PrefixListIds")
    )


def _revocable(permission: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {"IpProtocol": permission["IpProtocol"]}
    for port in ("FromPort", "ToPort"):
        if port in permission:
            clean[port] = permission[port]
    if permission.get("IpRanges"):
        clean["IpRanges"] = [{"CidrIp": r["CidrIp"]} for r in permission["IpRanges"]]
    if permission.get("Ipv6Ranges"):
        clean["Ipv6Ranges"] = [{"CidrIpv6": r["CidrIpv6"]} for r in permission["Ipv6Ranges"]]
    if permission.get("UserIdGroupPairs"):
        clean["UserIdGroupPairs"] = [{"GroupId": p["GroupId"]} for p in permission["UserIdGroupPairs"]]
    if permission.get("PrefixListIds"):
        clean["PrefixListIds"] = [{"PrefixListId": p["PrefixListId"]} for p in permission["PrefixListIds"]]
    return clean


def ensure_security_group(ec2, job: str, cidr: str, tags: list[dict[str, str]]) -> str:
    """Group ``burst-<job>`` whose only ingress is tcp/22 from ``cidr`` (older rules are replaced)."""
    vpc_id = default_vpc_id(ec2)
    group = find_security_group(ec2, job, vpc_id)
    if group is None:
        try:
            group_id = ec2.create_security_group(
                GroupName=security_group_name(job),
                Description=f"burst job {job}: SSH from the dispatcher only",
                VpcId=vpc_id,
                TagSpecifications=[{"ResourceType": "security-group", "Tags": tags}],
            )["GroupId"]
        except ClientError as error:
            if _code(error) != "InvalidGroup.Duplicate":
                raise
            group = find_security_group(ec2, job, vpc_id)  # created meanwhile by another dispatcher
            assert group is not None
        else:
            group = {"GroupId": group_id, "IpPermissions": []}
    permissions = group.get("IpPermissions", [])
    if not _is_only_ssh_from(permissions, cidr):
        if permissions:
            ec2.revoke_security_group_ingress(
                GroupId=group["GroupId"], IpPermissions=[_revocable(p) for p in permissions]
            )
        ec2.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[_ssh_permission(cidr)])
    return group["GroupId"]


# -- IAM role and instance profile -------------------------------------------


def trust_policy() -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }


def node_policy(job: str, bucket: str, partition: str = "aws") -> dict[str, Any]:
    """What a node may do: its job's bucket, and terminate machines tagged with its job."""
    bucket_arn = f"arn:{partition}:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ListJobBucket", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": bucket_arn},
            {
                "Sid": "ReadWriteJobObjects",
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts",
                ],
                "Resource": f"{bucket_arn}/*",
            },
            {
                "Sid": "TerminateJobMachines",
                "Effect": "Allow",
                "Action": "ec2:TerminateInstances",
                "Resource": "*",
                "Condition": {"StringEquals": {"ec2:ResourceTag/job": job}},
            },
        ],
    }


NODE_POLICY_NAME = "burst-node"


def ensure_instance_profile(iam, job: str, bucket: str, partition: str, tags: list[dict[str, str]]) -> tuple[str, str, bool]:
    """Role and instance profile ``burst-<job>-node``; returns (name, profile ARN, created now)."""
    name = node_role_name(job)
    created = False
    try:
        iam.get_role(RoleName=name)
    except ClientError as error:
        if _code(error) != "NoSuchEntity":
            raise
        try:
            iam.create_role(
                RoleName=name,
                AssumeRolePolicyDocument=json.dumps(trust_policy()),
                Description=f"burst job {job}: nodes save to their bucket and end their machines",
                Tags=tags,
            )
            created = True
        except ClientError as create_error:
            if _code(create_error) != "EntityAlreadyExists":
                raise
    # Always (re)write the inline policy: it follows the current bucket.
    iam.put_role_policy(RoleName=name, PolicyName=NODE_POLICY_NAME, PolicyDocument=json.dumps(node_policy(job, bucket, partition)))
    try:
        profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    except ClientError as error:
        if _code(error) != "NoSuchEntity":
            raise
        try:
            profile = iam.create_instance_profile(InstanceProfileName=name, Tags=tags)["InstanceProfile"]
            created = True
        except ClientError as create_error:
            if _code(create_error) != "EntityAlreadyExists":
                raise
            profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    if name not in [role["RoleName"] for role in profile.get("Roles", [])]:
        try:
            iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
            created = True
        except ClientError as error:
            if _code(error) != "LimitExceeded":  # the profile already has a role: ours
                raise
    return name, profile["Arn"], created


# -- bucket ------------------------------------------------------------------


def ensure_bucket(s3, bucket: str, region: str, tags: list[dict[str, str]]) -> bool:
    """Create the private bucket if needed; returns True when created now."""
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    created = True
    try:
        s3.create_bucket(**kwargs)
    except ClientError as error:
        code = _code(error)
        if code == "BucketAlreadyOwnedByYou":
            created = False
        elif code == "BucketAlreadyExists":
            raise UserError(
                f"The bucket name {bucket!r} is taken by another AWS account (bucket names are "
                f"global). Choose another job name, or give a bucket name of your own with "
                f"--bucket."
            ) from None
        elif code in ("InvalidBucketName", "IllegalLocationConstraintException", "InvalidLocationConstraint"):
            raise UserError(f"Cannot create the bucket {bucket!r} in {region}: {_message(error)}. Use --bucket to give another name.") from None
        else:
            raise
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    if created:
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags})
    return created


# -- all of it ---------------------------------------------------------------


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
    profile_created: bool = False  # a new instance profile needs seconds before RunInstances accepts it
    bucket_created: bool = False


def job_tags(job: str) -> list[dict[str, str]]:
    return [{"Key": "job", "Value": job}, {"Key": "burst", "Value": "1"}]


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
    cidr = caller_cidr(options.ssh_cidr)
    region = session.region_name or DEFAULT_REGION
    tags = job_tags(job)
    ec2 = session.client("ec2", config=CLIENT_CONFIG)
    iam = session.client("iam", config=CLIENT_CONFIG)
    s3 = session.client("s3", config=CLIENT_CONFIG)
    bucket = bucket_name(job, options.bucket)
    try:
        # Read-only checks first: a UserError here leaves nothing behind.
        check_key_pair(ec2, job, options.key_dir)
        default_vpc_id(ec2)
        bucket_created = ensure_bucket(s3, bucket, region, tags)
        key_name, key_file = ensure_key_pair(ec2, job, options.key_dir, tags)
        group_id = ensure_security_group(ec2, job, cidr, tags)
        profile_name, profile_arn, profile_created = ensure_instance_profile(iam, job, bucket, identity["partition"], tags)
    except ClientError as error:
        if _code(error) in _BAD_CREDENTIAL_CODES:
            raise UserError(
                f"Your AWS identity {identity['arn']} may not {error.operation_name}: {_message(error)}. "
                "burst needs EC2 (instances, key pairs, security groups), IAM (roles, instance "
                "profiles, PassRole) and S3 (buckets) permissions; ask your administrator, or use "
                "another --profile."
            ) from None
        raise BurstError(f"setting up AWS for job {job} failed: {error}") from error
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
        profile_created=profile_created,
        bucket_created=bucket_created,
    )


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
            delay = 5.0
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
                    if time.monotonic() + delay > deadline:
                        raise BurstError(
                            f"the security group {group['GroupId']} of job {job} is still used by "
                            f"machines; run `python -m burst terminate {job}`, wait until they are "
                            f"gone, and clean up again."
                        ) from None
                    sleep(delay)
                    delay = min(delay * 2, 30.0)

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


__all__ = [
    "JobResources",
    "bucket_name",
    "caller_cidr",
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
