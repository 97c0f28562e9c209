"""The processes of a worker's slots: which CPUs a slot pins, and how a row's command is stopped.

Standard library only: the worker imports it.
"""

from __future__ import annotations

import os
import signal
import subprocess

KILL_GRACE = 5.0  # seconds between TERM and KILL


def slot_cpus(slot: int, slots: int) -> list[int]:
    """The CPUs of one slot: the machine's CPUs split evenly; [] (all of them) with one slot."""
    available = sorted(os.sched_getaffinity(0))
    if slots <= 1:
        return []
    per = max(1, len(available) // slots)
    start = (slot * per) % len(available)
    return available[start:start + per]


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
