"""The job's SSH door: the caller's address, the key pair ``burst-<job>`` and the security group ``burst-<job>``.

The private key goes to ``<key_dir>/<job>.pem`` (0600, never overwritten); the
group admits tcp/22 from one CIDR only: the caller's address ``/32`` unless
``--ssh-cidr`` says otherwise, and never wider than /16 (IPv4) or /48 (IPv6)
without ``--allow-wide-ssh``.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from burst.errors import UserError, command_name
from burst.providers.aws_names import SSH_PORT, _code, key_file_path, key_pair_name, security_group_name

CHECKIP_URL = "https://checkip.amazonaws.com"  # only asked when no --ssh-cidr is given
CHECKIP_TIMEOUT = 5.0

MIN_IPV4_PREFIX = 16
MIN_IPV6_PREFIX = 48


def validate_cidr(text: str, allow_wide: bool = False) -> str:
    """A normalised CIDR; a bare address becomes ``/32`` (``/128``).

    Never ``/0``; nothing wider than /16 (IPv4) or /48 (IPv6) unless ``allow_wide``:
    ``0.0.0.0/1`` and ``128.0.0.0/1`` together are the whole internet too.
    """
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
    narrowest = MIN_IPV4_PREFIX if network.version == 4 else MIN_IPV6_PREFIX
    if network.prefixlen < narrowest and not allow_wide:
        raise UserError(
            f"--ssh-cidr {text} opens SSH to {network.num_addresses:,} addresses: every peer opens "
            f"0.0.0.0/0, burst does not. Give your own address (203.0.113.7/32) or a range of at most "
            f"/{narrowest}; if you really mean this range, add --allow-wide-ssh."
        )
    return str(network)


def caller_cidr(ssh_cidr: str | None, *, allow_wide: bool = False, url: str | None = None,
                timeout: float = CHECKIP_TIMEOUT) -> str:
    """``ssh_cidr`` if given; else this machine's public IPv4 address ``/32`` from checkip.

    checkip is the only request outside AWS that burst makes, and only when
    ``--ssh-cidr`` is not given.
    """
    if ssh_cidr:
        return validate_cidr(ssh_cidr, allow_wide)
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
            f"`{command_name()} terminate {job}` if machines of the job still run) and burst "
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


def ensure_security_group(ec2, job: str, cidr: str, tags: list[dict[str, str]], vpc_id: str | None = None) -> str:
    """Group ``burst-<job>`` in ``vpc_id`` (default: the default VPC) whose only ingress is tcp/22 from ``cidr``."""
    vpc_id = vpc_id or default_vpc_id(ec2)
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

