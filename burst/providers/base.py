"""The Provider seam: machines, found and ended by their tags.

Tags are the source of truth: every machine carries ``job`` from its launch, so
a dispatcher that died leaks nothing that ``list({"job": ...})`` cannot find.
"""

from __future__ import annotations

import dataclasses
import os
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from burst.providers.pricing import PriceBook
from burst.providers.quotas import QuotaNeed
from burst.records import InstanceInfo, Job, from_known_fields
from burst.transport.base import Transport


@dataclass(frozen=True)
class ShellCommand:
    """How a person gets a shell (or runs a command) on a machine: what to exec, where, with what environment."""

    argv: list[str]
    cwd: str | None = None
    env: dict[str, str] | None = None  # None: the caller's own


@dataclass(frozen=True)
class LaunchSpec:
    """What every machine of one ``launch`` call has in common."""

    job: str
    instance_type: str
    image: str  # AMI id, or "local"


class Provider(ABC):
    name: str
    job: str
    # Where tag folders live on a node: relative to the node user's home, or absolute.
    node_root: str = "burst"
    # Whether nodes need burst/bootstrap.sh (python3 + boto3) before INSTALL.sh.
    needs_bootstrap: bool = False
    # vCPUs per instance type, as ``validate`` found them (for slots=auto and the quota check)
    vcpus: dict[str, int] = {}
    # each type's VCpuInfo as ``validate`` found it (EC2: DefaultCores, DefaultThreadsPerCore, ValidThreadsPerCore)
    cpu_info: dict[str, dict[str, Any]] = {}

    def physical_cores(self, types: list[str]) -> dict[str, int]:
        """Physical cores of a machine of each type, where known (slots get whole cores; 'auto' is one per core)."""
        return {t: int(self.cpu_info[t]["DefaultCores"]) for t in types if self.cpu_info.get(t, {}).get("DefaultCores")}

    def node_python(self) -> str:
        """Python interpreter that runs the agent on a node."""
        return "python3"

    def validate(self, jobs: list[Job]) -> None:
        """Check image and instance types before anything is launched (raise UserError)."""

    def price_book(self, types: list[str], spot: bool) -> PriceBook:
        """What a machine of each type costs per hour (unknown prices are None). Creates nothing anywhere."""
        return PriceBook.free(types)

    def check_quotas(self, needs: list[QuotaNeed], notes: list[str]) -> None:
        """Fill ``needs`` with the account's quotas where they can be read; else add a note."""

    def plan_notes(self) -> list[str]:
        """Lines the plan shows about where machines go (after ``validate``)."""
        return []

    def prepare(self) -> None:
        """Create what the job's machines need once (keys, firewall, bucket, role). Idempotent."""

    @property
    @abstractmethod
    def bucket_url(self) -> str:
        """Storage URL of the job's bucket."""

    def storage_options(self) -> dict[str, Any]:
        """Keyword options for ``open_storage`` on the dispatcher's side."""
        return {}

    def node_options(self) -> dict[str, Any]:
        """``NodeConfig.provider_options`` for agents on this provider's machines."""
        return {}

    @abstractmethod
    def launch(self, spec: LaunchSpec, count: int) -> list[str]:
        """Start ``count`` machines of one type in one batched call; return their ids.

        Every machine carries the job's tags from its first moment (no tag is added
        afterwards), so a dispatcher that dies right after the call leaks nothing.
        """

    @abstractmethod
    def wait_ready(self, ids: list[str]) -> list[InstanceInfo]:
        """Block until the machines run and can be reached; return them."""

    @abstractmethod
    def list(self, tags: dict[str, str]) -> list[InstanceInfo]:
        """Machines that are not terminated and carry all of ``tags``."""

    @abstractmethod
    def terminate(self, ids: list[str]) -> None:
        """End these machines (one batched call)."""

    @abstractmethod
    def transport(self, instance: InstanceInfo, connect_timeout: float = 600.0) -> Transport:
        """A connected Transport to this machine, retrying for up to ``connect_timeout`` while it boots."""

    def shell_command(self, instance: InstanceInfo, workdir: str, command: str | None = None) -> ShellCommand:
        """An interactive shell in ``workdir`` on the machine, or ``command`` run there (``burst ssh``)."""
        raise NotImplementedError(f"{self.name} machines have no shell access")

    def node_dir(self, instance: InstanceInfo) -> str:
        """The machine's folder on it (``~/burst/<job>/<instance id>`` by default)."""
        return f"{self.node_root.rstrip('/')}/{instance.job}/{instance.id}"

    def login_note(self) -> str:
        """What the person should know about who logs in to the machines ("" when nothing)."""
        return ""

    def login_refused(self, instance: InstanceInfo, error: Exception) -> str:
        """The verdict on a machine that refused the job's SSH login: why, and what to pass instead."""
        return str(error)

    def live_ids(self) -> list[str] | None:
        """Ids of the job's live machines, for a message after a failure; None when that cannot be known now."""
        try:
            return [info.id for info in self.list({"job": self.job})]
        except Exception:  # the failure being reported may be this very call's: say "unknown", not more
            return None

    def cleanup(self) -> list[str]:
        """Remove what ``prepare`` made for the job, once its machines are gone and its data deleted.

        Returns what was removed, as short phrases (``cleanup`` prints them).
        """
        return []

    def report(self, message: str) -> None:
        """What a user should see that the provider decided or waits for (EC2 capacity, a spot request that fell
        back to on-demand); the campaign sets where it goes."""

    def close(self) -> None:
        """Release clients and connections."""


def burst_home() -> Path:
    """``$BURST_HOME`` or ``~/.burst``: campaign records, local sandboxes and buckets."""
    return Path(os.environ.get("BURST_HOME") or Path.home() / ".burst").expanduser()


@contextmanager
def kept_private() -> Iterator[None]:
    """Meanwhile, everything this process (and every process it starts: local sandboxes) writes is its
    user's alone (umask 077: files 0600, folders 0700, ``burst_home()`` too), and an existing wider
    ``burst_home()`` (an older burst's) is made 0700.

    Called by the commands that write under ``burst_home()`` once their checks passed (a refused
    command creates nothing); ``download`` and ``plot`` write where the user says, with the user's umask.
    """
    before = os.umask(0o077)
    try:
        home = burst_home()
        if home.is_dir() and home.stat().st_mode & 0o077:
            home.chmod(0o700)
        yield
    finally:
        os.umask(before)


@dataclass
class ProviderOptions:
    """Provider settings from the command line; saved in the campaign record (JSON)."""

    region: str | None = None
    profile: str | None = None
    ssh_cidr: str | None = None
    allow_wide_ssh: bool = False  # --allow-wide-ssh: an --ssh-cidr wider than /16 (/48) is meant
    max_hours: float = 24.0
    user: str | None = None  # --user; None: the AMI's (burst.providers.ami_user)
    ssh_config: str | None = None
    bucket: str | None = None  # bucket name; default: the job name
    adopt_bucket: bool = False  # --adopt-bucket: use an existing bucket of the user's that burst did not make
    node_root: str = "burst"
    market: str = "on-demand"  # on-demand | spot (falls back to on-demand) | spot-only (waits for spot)
    threads_per_core: int | None = None  # --threads-per-core: RunInstances' CpuOptions (None: as AWS sells the type)
    key_dir: str = field(default_factory=lambda: str(Path.home() / ".ssh"))
    subnets: list[str] = field(default_factory=list)  # --subnet, one per Availability Zone; none: the default VPC's
    public_ip: bool | None = None  # --public-ip / --no-public-ip; None: what the subnet gives
    disk_gb: int | None = None  # --disk-gb: the root volume (gp3); None: the AMI's own
    instance_profile: str | None = None  # --instance-profile: an existing profile; None: burst makes burst-<job>-node

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ProviderOptions":
        return from_known_fields(cls, data)
