"""EC2 machines through boto3, found and ended by their tags.

Every instance carries ``job``, ``burst=1`` and ``Name=<job>`` from its
``RunInstances`` call (TagSpecifications: no tag is added later, so no machine is
ever untagged). Instances start with
``InstanceInitiatedShutdownBehavior=terminate`` and a user-data watchdog that
shuts the OS down after ``--max-hours``, which therefore terminates them.

API calls are batched: one ``RunInstances`` per instance type and up to
``MAX_PER_RUN`` machines when EC2 has them (larger campaigns take one call per 100;
a zone that starts fewer is asked again for the rest, ``ec2_launch``), one waiter
and one ``DescribeInstances`` for all machines, ``TerminateInstances`` by 1000.
Throttling is retried by botocore (standard mode, ``burst.retry``); how one
RunInstances meets partial capacity, zones without capacity, quotas and a new
instance profile is ``burst.providers.ec2_launch``; subnets and addresses are
``burst.providers.ec2_network``.

The checks before a launch (AMI, instance types and their architectures,
Marketplace subscription) are in ``burst.providers.ec2_checks``.

The module imports boto3 only (the worker's own call is in ``burst.node.ending``);
paramiko comes in with ``transport()``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from botocore.exceptions import ClientError, WaiterError

from burst.errors import BurstError
from burst.providers import aws_setup, ec2_checks, ec2_launch, ec2_network, ec2_spot
from burst.providers.aws_bucket import is_aws_endpoint_url
from burst.providers.base import LaunchSpec, Provider
from burst.providers.ec2_access import EC2Access
from burst.providers.ec2_checks import _chunks, _code
from burst.providers.ec2_spot import SpotRefused
from burst.providers.ec2_userdata import user_data
from burst.providers.pricing import PriceBook, machine_extras, read_prices
from burst.providers.quotas import QuotaNeed, read_quotas
from burst.records import InstanceInfo, Job
from burst.retry import REPORT_EVERY, aws_config

if TYPE_CHECKING:
    from burst.providers.base import ProviderOptions

MAX_PER_RUN = 100  # machines per RunInstances call (a zone short of capacity may start fewer: ec2_launch)
TERMINATE_BATCH = 1000
DESCRIBE_BATCH = 200  # instance ids per DescribeInstances / waiter call
LIVE_STATES = ["pending", "running", "stopping", "stopped"]

EC2_CONFIG = aws_config(connect_timeout=20, read_timeout=120)

def _instance_info(instance: dict[str, Any]) -> InstanceInfo:
    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
    public_ip = instance.get("PublicIpAddress", "") or ""
    public_dns = instance.get("PublicDnsName", "") or ""
    private_ip = instance.get("PrivateIpAddress", "") or ""
    launch_time = instance.get("LaunchTime")
    return InstanceInfo(
        id=instance["InstanceId"],
        job=tags.get("job", ""),
        instance_type=instance.get("InstanceType", ""),
        state=instance.get("State", {}).get("Name", ""),
        host=public_ip or public_dns or private_ip,
        details={
            "availability_zone": instance.get("Placement", {}).get("AvailabilityZone", ""),
            "image_id": instance.get("ImageId", ""),
            "lifecycle": "spot" if instance.get("InstanceLifecycle") == "spot" else "on-demand",
            "launch_time": launch_time.isoformat() if hasattr(launch_time, "isoformat") else str(launch_time or ""),
            "public_ip": public_ip,
            "public_dns": public_dns,
            "private_ip": private_ip,
            "state_reason": instance.get("StateReason", {}).get("Message", ""),
        },
    )


class EC2Provider(EC2Access, Provider):
    name = "ec2"
    needs_bootstrap = True  # stock AMIs may lack boto3 for the agent

    def __init__(self, job: str, image: str, options: "ProviderOptions", burst_home: Path):
        self.job = job
        self.image = image
        self.options = options
        self.burst_home = Path(burst_home)
        self.node_root = options.node_root
        self.session = aws_setup.make_session(options.region, options.profile)
        self.region: str = self.session.region_name or aws_setup.DEFAULT_REGION
        # The client is public so that callers (and tests) can hook botocore events on it.
        self.ec2 = self.session.client("ec2", config=EC2_CONFIG)
        self.resources: aws_setup.JobResources | None = None
        self.launched: list[str] = []  # every id this provider object launched
        self.sleep: Callable[[float], None] = time.sleep
        self.report_every = REPORT_EVERY  # seconds between messages while waiting for capacity
        self.poll_seconds = 5.0  # waiter delay
        self.ready_timeout = 900.0  # waiter gives up after this long
        self._identity: dict[str, str] | None = None
        self._s3_endpoint: str | None = None  # the dispatcher's S3 endpoint (node_options)
        self._marketplace_codes: list[str] = []
        self._root_device = ""  # the AMI's root device name, for --disk-gb
        self._network: tuple[str, list[ec2_network.Subnet]] | None = None  # (VPC, subnets), once validated
        self.vcpus: dict[str, int] = {}
        self.cpu_info: dict[str, dict] = {}  # VCpuInfo per type: physical cores, threads per core
        self.spot_waits: dict[str, ec2_spot.SpotWait] = {}  # --spot-only: per type, when to ask again
        self._image: dict[str, Any] | None = None  # DescribeImages' answer, once asked

    # -- checks and setup ----------------------------------------------------

    def _check_credentials(self) -> dict[str, str]:
        if self._identity is None:
            self._identity = aws_setup.check_credentials(self.session, self.options.profile)
        return self._identity

    def validate(self, jobs: list[Job]) -> None:
        """AMI exists (and may be used), every instance type exists and fits its architecture."""
        self._check_credentials()
        image = self._image = ec2_checks.describe_image(self.ec2, self.image, self.region)
        types = ec2_checks.describe_instance_types(self.ec2, jobs, self.region, self.vcpus, self.cpu_info)
        ec2_checks.check_architecture(self.image, image, jobs, types)
        self._marketplace_codes = ec2_checks.marketplace_codes(image)
        self._network = ec2_network.resolve_subnets(self.ec2, self.options.subnets)  # no VPC: a UserError now
        self._root_device = ec2_checks.root_device(self.image, image, self.options.disk_gb)
        if self._marketplace_codes:
            ec2_checks.check_subscription(
                self.ec2, self.image, jobs[0].instance_type if jobs else "t3.micro", self._marketplace_codes
            )

    def plan_notes(self) -> list[str]:
        if self._network is None:
            return []
        _, extras = self._extras()
        return [ec2_network.plan_line(*self._network, self.options.public_ip, given=bool(self.options.subnets))] + (
            [f"each machine's price includes {' and '.join(extras)}"] if extras else [])

    def _extras(self) -> tuple[float, list[str]]:
        subnets = self._network[1] if self._network else []
        public = self.options.public_ip if self.options.public_ip is not None else (
            not subnets or subnets[0].public_ip_on_launch)
        return machine_extras(self.options.disk_gb, public)

    def price_book(self, types: list[str], spot: bool) -> PriceBook:
        book = read_prices(self.session, self.ec2, self.region, types, spot, self.burst_home / "prices")
        book.extra_per_hour = self._extras()[0]
        return book

    def check_quotas(self, needs: list[QuotaNeed], notes: list[str]) -> None:
        read_quotas(self.session, self.region, needs, notes)

    def prepare(self) -> None:
        self.resources = aws_setup.prepare(self.job, self.options, self.session, identity=self._identity)
        for warning in self.resources.warnings:
            self.report(f"warning: {warning}")

    def _prepared(self) -> aws_setup.JobResources:
        if self.resources is None:
            self.prepare()
        assert self.resources is not None
        return self.resources

    # -- where things are ----------------------------------------------------

    @property
    def bucket_url(self) -> str:
        return f"s3://{aws_setup.bucket_name(self.job, self.options.bucket)}"

    def storage_options(self) -> dict[str, Any]:
        return {"region": self.region, "profile": self.options.profile}

    def node_options(self) -> dict[str, Any]:
        """The nodes' region, the S3 store the dispatcher uses when it is not AWS (never credentials:
        nodes sign with their instance profile; docs/aws.md, "The bucket on an S3-compatible store"),
        and the profile's role id (a machine that cannot ask STS who it is names its folder by it)."""
        if self._s3_endpoint is None:  # made once: the fleet asks for every machine
            self._s3_endpoint = self.session.client("s3").meta.endpoint_url or ""
        endpoint = self._s3_endpoint
        role = {"node_role_id": self.resources.node_role_id} if self.resources and self.resources.node_role_id else {}
        return {"region": self.region, **({} if is_aws_endpoint_url(endpoint) else {"s3_endpoint": endpoint}), **role}

    @property
    def key_file(self) -> Path:
        if self.resources is not None:
            return self.resources.key_file
        return aws_setup.key_file_path(self.job, self.options.key_dir)

    @property
    def known_hosts(self) -> Path:
        return self.burst_home / "campaigns" / f"{self.job}.known_hosts"

    # -- machines ------------------------------------------------------------

    def launch(self, spec: LaunchSpec, count: int) -> list[str]:
        """Up to ``count`` machines of ``spec.instance_type``, tagged at launch (one RunInstances per 100 when EC2 has them)."""
        if count <= 0:
            return []
        resources = self._prepared()
        params: dict[str, Any] = {
            "ImageId": spec.image,
            "InstanceType": spec.instance_type,
            "KeyName": resources.key_name,
            "IamInstanceProfile": {"Arn": resources.instance_profile_arn},
            "InstanceInitiatedShutdownBehavior": "terminate",
            "UserData": user_data(spec.job, self.options.max_hours),
            "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2, "HttpEndpoint": "enabled"},
            "TagSpecifications": [
                {"ResourceType": kind, "Tags": aws_setup.job_tags(spec.job) + [{"Key": "Name", "Value": spec.job}]}
                for kind in ("instance", "volume")
            ],
        }
        params.update(ec2_checks.cpu_options(self.ec2, self.cpu_info, spec.instance_type, self.options.threads_per_core))
        if self.options.disk_gb:
            params["BlockDeviceMappings"] = [{"DeviceName": self._root_device or "/dev/sda1", "Ebs": {
                "VolumeSize": self.options.disk_gb, "VolumeType": "gp3", "DeleteOnTermination": True}}]
        if self.options.market == "on-demand":
            return self.launch_batches(params, count)
        return ec2_spot.launch_spot(self, params, count)

    def launch_batches(self, params: dict[str, Any], count: int, spot: bool = False) -> list[str]:
        """One RunInstances per ``MAX_PER_RUN`` machines; a spot refusal says what was launched before it."""
        ids: list[str] = []
        for start in range(0, count, MAX_PER_RUN):
            try:
                instances = self._run_instances(params, min(MAX_PER_RUN, count - start), spot_refusals=spot)
            except SpotRefused as refused:
                started = [instance["InstanceId"] for instance in refused.instances]  # before the refusal: kept
                self.launched.extend(started)
                refused.launched = ids + started
                raise
            chunk_ids = [instance["InstanceId"] for instance in instances]
            self.launched.extend(chunk_ids)
            ids.extend(chunk_ids)
            if len(chunk_ids) < min(MAX_PER_RUN, count - start):
                break  # EC2 gave fewer: the pool asks for the rest next round
        return ids

    def _run_instances(self, params: dict[str, Any], count: int, spot_refusals: bool = False) -> list[dict[str, Any]]:
        return ec2_launch.run_instances(self, params, count, spot_refusals)

    def subnets(self) -> list[ec2_network.Subnet]:
        """Where machines go, in the order tried (``--subnet``, else the default VPC's, by zone)."""
        return self._prepared().subnets

    def wait_ready(self, ids: list[str]) -> list[InstanceInfo]:
        """Wait for state running (one waiter per 200 ids), then one DescribeInstances."""
        if not ids:
            return []
        waiter = self.ec2.get_waiter("instance_running")
        attempts = max(1, int(self.ready_timeout / max(self.poll_seconds, 0.1)))
        for chunk in _chunks(list(ids), DESCRIBE_BATCH):
            try:
                waiter.wait(InstanceIds=chunk, WaiterConfig={"Delay": self.poll_seconds, "MaxAttempts": attempts})
            except WaiterError as error:
                states = {info.id: info for info in self._describe(chunk)}
                stuck = [
                    f"{i}: {states[i].state}"
                    + (f", {states[i].details['state_reason']}" if states[i].details.get("state_reason") else "")
                    for i in chunk
                    if i in states and states[i].state != "running"
                ]
                raise BurstError(
                    f"machines of job {self.job} did not reach 'running': "
                    + ("; ".join(stuck) or str(error))
                ) from None
        found = {info.id: info for info in self._describe(list(ids))}
        missing = [i for i in ids if i not in found]
        if missing:
            raise BurstError(f"instances {', '.join(missing)} of job {self.job} are gone")
        return [found[i] for i in ids]

    def _describe(self, ids: list[str]) -> list[InstanceInfo]:
        infos: list[InstanceInfo] = []
        paginator = self.ec2.get_paginator("describe_instances")
        for chunk in _chunks(list(ids), DESCRIBE_BATCH):
            for page in paginator.paginate(InstanceIds=chunk):
                for reservation in page.get("Reservations", []):
                    infos.extend(_instance_info(instance) for instance in reservation.get("Instances", []))
        return infos

    def list(self, tags: dict[str, str]) -> list[InstanceInfo]:
        """Instances not terminated (nor shutting down) that carry all of ``tags``."""
        filters = [{"Name": f"tag:{key}", "Values": [value]} for key, value in sorted(tags.items())]
        if not filters:
            filters = [{"Name": "tag:burst", "Values": ["1"]}]
        filters.append({"Name": "instance-state-name", "Values": LIVE_STATES})
        infos: list[InstanceInfo] = []
        for page in self.ec2.get_paginator("describe_instances").paginate(Filters=filters):
            for reservation in page.get("Reservations", []):
                infos.extend(_instance_info(instance) for instance in reservation.get("Instances", []))
        return sorted(infos, key=lambda info: (info.instance_type, info.id))

    def terminate(self, ids: list[str]) -> None:
        """TerminateInstances by 1000; ids already gone are skipped."""
        ids = list(dict.fromkeys(i for i in ids if i))
        for chunk in _chunks(ids, TERMINATE_BATCH):
            try:
                self.ec2.terminate_instances(InstanceIds=chunk)
            except ClientError as error:
                if _code(error) != "InvalidInstanceID.NotFound":
                    raise
                existing = self._existing(chunk)
                if existing:
                    self.ec2.terminate_instances(InstanceIds=existing)
        gone = set(ids)
        self.launched = [i for i in self.launched if i not in gone]

    def _existing(self, ids: list[str]) -> list[str]:
        """Those of ``ids`` that EC2 knows (a filter, unlike InstanceIds, ignores unknown ids)."""
        known: set[str] = set()
        paginator = self.ec2.get_paginator("describe_instances")
        for page in paginator.paginate(Filters=[{"Name": "instance-id", "Values": ids}]):
            for reservation in page.get("Reservations", []):
                known.update(instance["InstanceId"] for instance in reservation.get("Instances", []))
        return [i for i in ids if i in known]

    # -- clean-up ------------------------------------------------------------

    def teardown(self) -> list[str]:
        """Remove key pair and key file, security group, role and profile, known_hosts (not the bucket)."""
        removed = aws_setup.teardown(self.job, self.options, self.session)
        if self.known_hosts.exists():
            self.known_hosts.unlink()
            removed.append(f"known hosts {self.known_hosts}")
        return removed

    def cleanup(self) -> list[str]:
        return self.teardown()

    def close(self) -> None:
        self.ec2.close()
