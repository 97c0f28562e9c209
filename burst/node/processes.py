"""The processes of a worker's slots: which CPUs a slot pins, and how a row's command is stopped.

Standard library only: the worker imports it.
"""

from __future__ import annotations

import os
import signal
import subprocess

from burst.node import topology
from burst.node.topology import Core

KILL_GRACE = 5.0  # seconds between TERM and KILL


def slot_placement(slot: int, slots: int, cores: list[Core]) -> tuple[list[int], list[str]]:
    """The CPUs a slot pins ([] with one slot: all of them, unpinned) and its cores' names (whole cores, siblings together)."""
    mine = cores if slots <= 1 else topology.slot_cores(cores, slots, slot)
    return ([] if slots <= 1 else topology.slot_cpus(mine)), [core.name for core in mine]


def stop_process_group(process: subprocess.Popen | None) -> None:
    """TERM the command's process group, KILL it after a grace period."""
    if process is None:
        return
    for sig, wait in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
