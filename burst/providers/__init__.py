"""Pick a provider from the AMI argument: ``local`` or an EC2 image id."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from burst.node_config import NodeConfig
from burst.providers.base import LaunchSpec, Provider
from burst.records import from_known_fields

__all__ = ["LaunchSpec", "NodeConfig", "Provider", "ProviderOptions", "make_provider", "burst_home"]


def burst_home() -> Path:
    """``$BURST_HOME`` or ``~/.burst``: campaign records, local sandboxes and buckets."""
    return Path(os.environ.get("BURST_HOME") or Path.home() / ".burst").expanduser()


@dataclass
class ProviderOptions:
    """Provider settings from the command line; saved in the campaign record (JSON)."""

    region: str | None = None
    profile: str | None = None
    ssh_cidr: str | None = None
    allow_wide_ssh: bool = False  # --allow-wide-ssh: an --ssh-cidr wider than /16 (/48) is meant
    max_hours: float = 24.0
    user: str = "ubuntu"
    ssh_config: str | None = None
    bucket: str | None = None  # bucket name; default: the job name
    node_root: str = "burst"
    market: str = "on-demand"  # on-demand | spot (falls back to on-demand) | spot-only (waits for spot)
    key_dir: str = field(default_factory=lambda: str(Path.home() / ".ssh"))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ProviderOptions":
        return from_known_fields(cls, data)


def make_provider(image: str, job: str, options: ProviderOptions) -> Provider:
    if image == "local":
        from burst.providers.local import LocalProvider

        return LocalProvider(job, burst_home(), node_root=options.node_root)
    from burst.providers.ec2 import EC2Provider

    return EC2Provider(job, image, options, burst_home())
