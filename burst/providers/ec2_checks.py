"""The EC2 checks run before anything is launched (``EC2Provider.validate``).

Each takes the boto3 EC2 client and what it checks: the AMI exists, may be used
and runs Linux; every instance type exists in the region and fits the AMI's
architecture; a Marketplace AMI is subscribed to (a ``DryRun`` RunInstances).
Problems the user can fix are raised as ``UserError``.

Also home of the small ``ClientError`` and batching helpers that ``ec2`` shares.
"""

from __future__ import annotations

from typing import Any, Iterator

from botocore.exceptions import ClientError

from burst.errors import UserError
from burst.records import Job

TYPES_BATCH = 100  # DescribeInstanceTypes takes at most 100 types


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", "")) or str(error)


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def describe_image(ec2, image_id: str, region: str) -> dict[str, Any]:
    """The AMI's description; a UserError when it is missing, not available or Windows."""
    missing = UserError(
        f"The AMI {image_id} does not exist in {region}, or your account may not use "
        f"it. AMI ids differ between regions: look the image up in {region} (EC2 "
        f"console > AMIs, or `aws ec2 describe-images --image-ids {image_id} --region "
        f"{region}`), or pass the AMI's region with --region."
    )
    try:
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
    except ClientError as error:
        if _code(error).startswith("InvalidAMIID"):
            raise missing from None
        raise
    if not images:
        raise missing
    image = images[0]
    if image.get("State", "available") != "available":
        raise UserError(
            f"The AMI {image_id} is {image.get('State')}, not available: wait until it is "
            f"available, or use another AMI."
        )
    if image.get("Platform") == "windows":
        raise UserError(
            f"The AMI {image_id} is a Windows image; burst sets machines up over SSH with "
            f"bash and needs a Linux AMI (Ubuntu, Amazon Linux, ...)."
        )
    return image


def cpu_options(ec2, cpu_info: dict[str, dict], instance_type: str, threads_per_core: int | None) -> dict[str, Any]:
    """RunInstances' ``CpuOptions`` for ``--threads-per-core``: every core, with that many threads each.

    {} when it was not asked for, when the type runs so already (Graviton: one thread
    per core), or when the type cannot (no CPU options, or that count not among its
    ValidThreadsPerCore): the plan says which (``threads_notes``). The price stays the
    instance's whatever runs on it.
    """
    if not threads_per_core:
        return {}
    info = cpu_info.get(instance_type)
    if info is None:  # a reconcile of a later run: not validated in this process
        found = ec2.describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"]
        info = cpu_info[instance_type] = dict(found[0].get("VCpuInfo", {})) if found else {}
    if (threads_per_core == info.get("DefaultThreadsPerCore") or not info.get("DefaultCores")
            or threads_per_core not in info.get("ValidThreadsPerCore", [])):
        return {}
    return {"CpuOptions": {"CoreCount": int(info["DefaultCores"]), "ThreadsPerCore": threads_per_core}}


def threads_notes(cpu_info: dict[str, dict], types: list[str], threads_per_core: int | None) -> list[str]:
    """What ``--threads-per-core`` does to each type, for the plan."""
    notes = []
    for kind in types if threads_per_core else []:
        info = cpu_info.get(kind, {})
        cores, default = info.get("DefaultCores"), info.get("DefaultThreadsPerCore")
        if threads_per_core == default:
            notes.append(f"--threads-per-core {threads_per_core}: {kind} runs {default} thread{'s' if default > 1 else ''} "
                         f"per core already")
        elif cores and threads_per_core in info.get("ValidThreadsPerCore", []):
            notes.append(f"--threads-per-core {threads_per_core}: {kind} runs its {cores} core{'s' if cores > 1 else ''} "
                         f"with {threads_per_core} thread{'s' if threads_per_core > 1 else ''} each ({cores * threads_per_core} of its "
                         f"{info.get('DefaultVCpus')} vCPUs; CpuOptions at launch), at the price of the whole instance")
        else:
            valid = ", ".join(map(str, info.get("ValidThreadsPerCore", []))) or "none"
            notes.append(f"--threads-per-core {threads_per_core}: {kind} cannot run so (its valid threads per core: "
                         f"{valid}); it runs as AWS sells it")
    return notes


def describe_instance_types(ec2, jobs: list[Job], region: str, vcpus: dict[str, int] | None = None,
                            cpu_info: dict[str, dict] | None = None) -> dict[str, list[str]]:
    """Instance type -> supported architectures; a UserError naming unknown types and lines.

    Into ``vcpus``: each type's vCPUs; into ``cpu_info``: its ``VCpuInfo`` as AWS gives it
    (DefaultCores, DefaultThreadsPerCore, ValidThreadsPerCore: whole cores per slot, --threads-per-core).
    """
    wanted = sorted({job.instance_type for job in jobs})
    known: dict[str, list[str]] = {}
    unknown: list[str] = []
    for chunk in _chunks(wanted, TYPES_BATCH):
        try:
            found = ec2.describe_instance_types(InstanceTypes=chunk)["InstanceTypes"]
        except ClientError as error:
            if _code(error) != "InvalidInstanceType":
                raise
            found = []
            for one in chunk:  # which ones? ask one by one (only when something is wrong)
                try:
                    found += ec2.describe_instance_types(InstanceTypes=[one])["InstanceTypes"]
                except ClientError as single_error:
                    if _code(single_error) != "InvalidInstanceType":
                        raise
        for item in found:
            known[item["InstanceType"]] = list(item.get("ProcessorInfo", {}).get("SupportedArchitectures", []))
            if vcpus is not None and item.get("VCpuInfo", {}).get("DefaultVCpus"):
                vcpus[item["InstanceType"]] = int(item["VCpuInfo"]["DefaultVCpus"])
            if cpu_info is not None and item.get("VCpuInfo"):
                cpu_info[item["InstanceType"]] = dict(item["VCpuInfo"])
        unknown += [name for name in chunk if name not in known]
    if unknown:
        lines = {name: [job.line for job in jobs if job.instance_type == name] for name in unknown}
        listed = "; ".join(
            f"{name!r} (line{'s' if len(lines[name]) > 1 else ''} {', '.join(map(str, lines[name]))})"
            for name in unknown
        )
        raise UserError(
            f"Unknown instance type{'s' if len(unknown) > 1 else ''} in {region}: {listed}. "
            f"Check the spelling in the instance_type column of the job file (e.g. c5.large, "
            f"m6i.xlarge; see https://aws.amazon.com/ec2/instance-types/) and that the type is "
            f"offered in {region}."
        )
    return known


def check_architecture(image_id: str, image: dict[str, Any], jobs: list[Job], types: dict[str, list[str]]) -> None:
    """A UserError listing the jobs whose instance type cannot run the AMI's architecture."""
    architecture = image.get("Architecture", "")
    if architecture:
        wrong = [job for job in jobs if architecture not in types[job.instance_type]]
        if wrong:
            listed = ", ".join(f"{job.instance_type} (line {job.line})" for job in wrong)
            raise UserError(
                f"The AMI {image_id} is built for {architecture}, but these instance types "
                f"run {', '.join(sorted({a for job in wrong for a in types[job.instance_type]}))} "
                f"only: {listed}. Use an AMI of their architecture, or instance types for "
                f"{architecture} (for arm64: Graviton types such as t4g, c7g, m7g)."
            )


def marketplace_codes(image: dict[str, Any]) -> list[str]:
    """The AMI's AWS Marketplace product codes (none for an ordinary AMI)."""
    codes = [
        pc.get("ProductCodeId", "")
        for pc in image.get("ProductCodes", [])
        if pc.get("ProductCodeType") == "marketplace"
    ]
    return [code for code in codes if code]


def subscription_error(image_id: str, codes: list[str], detail: str = "") -> UserError:
    links = " ".join(f"https://aws.amazon.com/marketplace/pp?sku={code}" for code in codes)
    where = links or "the AMI's page in AWS Marketplace"
    return UserError(
        f"The AMI {image_id} is an AWS Marketplace product that your account is not "
        f"subscribed to{': ' + detail if detail else ''}. Subscribe to the AMI in AWS "
        f"Marketplace at {where} (accept the terms, wait until the subscription is active), "
        f"then retry."
    )


def check_subscription(ec2, image_id: str, instance_type: str, codes: list[str]) -> None:
    """A DryRun RunInstances: OptInRequired means the Marketplace terms are not accepted."""
    try:
        ec2.run_instances(
            ImageId=image_id, InstanceType=instance_type, MinCount=1, MaxCount=1, DryRun=True
        )
    except ClientError as error:
        if _code(error) == "OptInRequired":
            raise subscription_error(image_id, codes, _message(error)) from None
        # DryRunOperation = it would work; anything else is for the real launch to report.


def root_device(image_id: str, image: dict[str, Any], disk_gb: int | None) -> str:
    """The AMI's root device name (where ``--disk-gb`` goes); a disk smaller than its snapshot is refused."""
    name = image.get("RootDeviceName") or "/dev/sda1"
    if disk_gb:
        for mapping in image.get("BlockDeviceMappings", []):
            size = (mapping.get("Ebs") or {}).get("VolumeSize")
            if mapping.get("DeviceName") == name and size and disk_gb < int(size):
                raise UserError(f"--disk-gb {disk_gb} is smaller than the {size} GiB root snapshot of {image_id}: "
                                f"give --disk-gb {size} or more.")
    return name
