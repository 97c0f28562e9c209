"""Where a job's machines go: its subnets (one per Availability Zone) and their addresses.

* ``--subnet ID`` (repeatable): those subnets, all of one VPC, tried in the order
  given; without it, the default subnets of the region's default VPC, by zone. An
  account with neither gets one message naming both fixes, before anything is made.
* ``--public-ip`` / ``--no-public-ip``: ask for a public IPv4 address or not; by
  default a machine gets what its subnet gives.
* A machine that runs with no address burst could reach fails at once, saying why.

Only the dispatcher runs this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from burst.errors import UserError
from burst.providers.aws_names import _code, _message
from burst.records import InstanceInfo


@dataclass(frozen=True)
class Subnet:
    id: str
    zone: str
    vpc_id: str
    public_ip_on_launch: bool = False


def _subnet(found: dict[str, Any]) -> Subnet:
    return Subnet(found["SubnetId"], found.get("AvailabilityZone", ""), found.get("VpcId", ""),
                  bool(found.get("MapPublicIpOnLaunch")))


def resolve_subnets(ec2, subnet_ids: list[str]) -> tuple[str, list[Subnet]]:
    """``(VPC id, subnets)`` that machines launch into; read-only, a ``UserError`` names what to fix."""
    region = ec2.meta.region_name
    if subnet_ids:
        try:
            found = ec2.describe_subnets(SubnetIds=list(subnet_ids))["Subnets"]
        except ClientError as error:
            if _code(error).startswith("InvalidSubnetID"):
                raise UserError(f"--subnet: {_message(error)} in {region}. Give subnets of this region "
                                f"(`aws ec2 describe-subnets --region {region}`), or another --region.") from None
            raise
        by_id = {subnet["SubnetId"]: _subnet(subnet) for subnet in found}
        subnets = [by_id[i] for i in dict.fromkeys(subnet_ids) if i in by_id]
        vpcs = sorted({subnet.vpc_id for subnet in subnets})
        if len(vpcs) > 1:
            listed = ", ".join(f"{s.id} ({s.vpc_id})" for s in subnets)
            raise UserError(f"--subnet: the subnets must be of one VPC (the job's security group is in one): {listed}.")
        zones = [subnet.zone for subnet in subnets]
        if len(set(zones)) < len(zones):
            raise UserError(f"--subnet: give one subnet per Availability Zone ({', '.join(f'{s.id} in {s.zone}' for s in subnets)}).")
        return vpcs[0], subnets
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise UserError(
            f"The region {region} has no default VPC, and no --subnet was given. Give the subnets to "
            f"launch into with --subnet subnet-... (one per Availability Zone, each able to reach S3), or "
            f"create a default VPC with `aws ec2 create-default-vpc --region {region}`."
        )
    vpc_id = vpcs[0]["VpcId"]
    found = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                          {"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    return vpc_id, sorted((_subnet(subnet) for subnet in found), key=lambda subnet: subnet.zone)


def plan_line(vpc_id: str, subnets: list[Subnet], public_ip: bool | None, given: bool) -> str:
    """What the plan says of where machines go."""
    where = ", ".join(f"{subnet.id} ({subnet.zone})" for subnet in subnets) or "EC2's choice"
    address = {True: "a public IPv4 address each (--public-ip)", False: "no public IPv4 address (--no-public-ip)",
               None: "a public IPv4 address where the subnet gives one"}[public_ip]
    whose = "--subnet" if given else "the default VPC"
    return f"machines go into {vpc_id} ({whose}): subnets {where}, tried in this order; {address}"


def placement(subnet: Subnet | None, group_id: str, public_ip: bool | None) -> dict[str, Any]:
    """RunInstances parameters that put a machine in ``subnet`` behind the job's security group."""
    if public_ip is None or subnet is None:
        where: dict[str, Any] = {"SecurityGroupIds": [group_id]}
        if subnet is not None:
            where["SubnetId"] = subnet.id
        return where
    return {"NetworkInterfaces": [{"DeviceIndex": 0, "SubnetId": subnet.id, "Groups": [group_id],
                                   "AssociatePublicIpAddress": public_ip, "DeleteOnTermination": True}]}


def unreachable(info: InstanceInfo, public_ip: bool | None, proxied: bool) -> str | None:
    """Why burst cannot reach this running machine, or None.

    ``--no-public-ip`` or a ProxyJump/ProxyCommand for it in ``--ssh-config`` means the
    private address is meant; otherwise a machine needs a public address.
    """
    details = info.details or {}
    if details.get("public_ip") or details.get("public_dns"):
        return None
    if (public_ip is False or proxied) and details.get("private_ip"):
        return None
    if public_ip is False or proxied:
        return f"machine {info.id} has no address at all"
    return (f"machine {info.id} has no public IPv4 address (its subnet gives none): run with --public-ip, or "
            f"with --no-public-ip when this computer reaches the private addresses (a VPN, or a bastion "
            f"named by ProxyJump in --ssh-config)")
