"""The machine's physical cores, read from sysfs, and how slots share them out: whole cores, siblings together.

On EC2 (and most x86 Linux) the hyperthreads of one core are numbered far apart:
on a c5.2xlarge the cores are CPUs 0-3 and their siblings 4-7, so cutting the CPU
list into contiguous chunks gives two slots halves of the *same* cores, and each
slot's timings are disturbed by the other's (BenchExec's issue #122). Here a slot
gets whole cores (every sibling of each), and a core never belongs to two slots
unless there are more slots than cores.

A core is known by ``"<package>:<core_id>"`` (sysfs' ``core_id`` is unique only
within a package, i.e. a socket). Standard library only; runs on Python 3.9.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SYSFS_CPUS = "/sys/devices/system/cpu"


@dataclass(frozen=True)
class Core:
    """One physical core: its package (socket), its ``core_id`` there, and its hardware threads (CPUs)."""

    package: int
    core_id: int
    cpus: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"{self.package}:{self.core_id}"


def parse_cpu_list(text: str) -> list[int]:
    """The kernel's CPU list format: ``0,4`` ``0-3,8-11`` ``5``; [] for an empty or unreadable one."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                low, high = part.split("-", 1)
                cpus.extend(range(int(low), int(high) + 1))
            else:
                cpus.append(int(part))
        except ValueError:
            return []
    return sorted(set(cpus))


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _int(text: str | None, default: int) -> int:
    try:
        return int((text or "").strip())
    except ValueError:
        return default


def read_cores(root: str | Path = SYSFS_CPUS, allowed: set[int] | None = None) -> list[Core]:
    """The cores of the CPUs in ``allowed`` (default: this process's affinity), ordered by package then first CPU.

    Siblings come from ``topology/core_cpus_list`` (``thread_siblings_list`` on
    kernels before 5.x); a CPU sysfs does not describe (offline, or no sysfs in a
    container) counts as a core of its own, so the worker still runs, unshared.
    """
    allowed = set(os.sched_getaffinity(0)) if allowed is None else set(allowed)
    base = Path(root)
    seen: dict[int, Core] = {}  # first CPU of the core -> the core
    for cpu in sorted(allowed):
        if any(cpu in core.cpus for core in seen.values()):
            continue
        topology = base / f"cpu{cpu}" / "topology"
        siblings = parse_cpu_list(_read(topology / "core_cpus_list") or _read(topology / "thread_siblings_list") or "")
        siblings = [c for c in siblings if c in allowed] or [cpu]
        if cpu not in siblings:
            siblings = [cpu]
        core = Core(package=_int(_read(topology / "physical_package_id"), 0),
                    core_id=_int(_read(topology / "core_id"), cpu), cpus=tuple(siblings))
        seen[siblings[0]] = core
    return sorted(seen.values(), key=lambda c: (c.package, c.cpus[0]))


def threads_per_core(cores: list[Core]) -> int:
    return max((len(c.cpus) for c in cores), default=1)


def slot_cores(cores: list[Core], slots: int, slot: int) -> list[Core]:
    """The cores of slot ``slot`` of ``slots``: an equal share of whole cores, in order (a package stays together).

    Cores that do not divide evenly stay idle rather than make one slot bigger
    than the others (equal slots time alike). With more slots than cores, slots
    share cores round-robin: the plan refuses that on EC2 and warns locally.
    """
    if not cores:
        return []
    if slots > len(cores):
        return [cores[slot % len(cores)]]
    per = len(cores) // slots
    return cores[slot * per:(slot + 1) * per]


def slot_cpus(cores: list[Core]) -> list[int]:
    return sorted(cpu for core in cores for cpu in core.cpus)
