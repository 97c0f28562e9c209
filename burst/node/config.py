"""What a worker needs to know about its machine (``node.json``), and what it knows of the machine.

Written by the dispatcher into the machine's folder; never a credential in it.
Standard library only: the worker imports it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from burst import protocol

LEASE_HEARTBEATS = 4  # a lease expires after this many missed heartbeats


def lease_seconds(heartbeat: float) -> float:
    return LEASE_HEARTBEATS * heartbeat


@dataclass
class NodeConfig:
    provider: str  # "local" | "ec2"
    job: str
    instance_id: str
    instance_type: str
    bucket_url: str
    results: list[str]
    provider_options: dict[str, Any] = field(default_factory=dict)  # e.g. region, burst_home
    slots: str = "1"  # a number, or "auto" (the machine's physical cores)
    heartbeat: float = 30.0
    retries: int = 2  # attempts after the first one lost its machine
    retry_failed: bool = False  # a non-zero exit is retried too
    save_patience: float = 600.0  # seconds a bucket write is retried before the worker gives up on it
    facts: dict[str, Any] = field(default_factory=dict)  # what the provider says of the machine
    lifecycle: str = ""  # "spot": the worker watches for an interruption notice
    price_per_hour: float | None = None  # the machine's price, for each row's cost; None = unknown
    calibrate: bool = True  # measure the machine when the worker starts (burst.node.calibrate); --no-calibrate

    def slot_count(self, cores: int) -> int:
        """Slots on a machine of ``cores`` physical cores: "auto" is one per core."""
        if self.slots == "auto":
            return max(1, cores)
        return max(1, int(self.slots))

    def storage_options(self) -> dict[str, Any]:
        """The bucket's client on the machine: the dispatcher's region, and its S3-compatible store if not AWS."""
        if self.provider != "ec2":
            return {}
        endpoint = self.provider_options.get("s3_endpoint")
        return {"region": self.provider_options["region"], **({"endpoint_url": endpoint} if endpoint else {})}

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def load(cls, root: Path) -> "NodeConfig":
        data = json.loads((root / protocol.NODE_CONFIG).read_text(encoding="utf-8"))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance() -> dict:
    """What the numbers were measured on: benchmark timings mean nothing without it."""
    return {
        "host": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
    }

