"""Wall clock and CPU time of a command and of everything it leaves behind (for the benches).

burst starts detached processes (`nohup setsid`: setup.sh, the workers), which
the kernel would re-parent to init, so their CPU time would be lost. This process
makes itself a child subreaper (Linux prctl), so they are re-parented here, and
reaps them: `resource.getrusage(RUSAGE_CHILDREN)` then holds the CPU time of the
whole tree. CPU seconds do not depend on what else the machine runs, wall
seconds do: `busy()` says when the load average suggests the wall times are
inflated by other work on the machine.
"""

from __future__ import annotations

import ctypes
import os
import resource
import subprocess
import time
from dataclasses import dataclass

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def reap(seconds: float = 60.0, keep: frozenset[int] = frozenset()) -> int:
    """Wait for every descendant re-parented here (but ``keep``: our own servers) to end; how many were left."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return 0
        if pid:
            continue
        left = [p for p in _children() if p not in keep]
        if not left:
            return 0
        if time.monotonic() > deadline:
            return len(left)
        time.sleep(0.05)


def _children() -> list[int]:
    me = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    if handle.read().rsplit(")", 1)[1].split()[1] == me:
                        found.append(int(entry))
            except OSError:
                continue
    return found


@dataclass
class Measured:
    wall: float
    returncode: int
    output: str
    cpu: float  # the command itself and the children it waited for


def run(args: list[str], env: dict, output_file: str, timeout: float = 3600) -> Measured:
    """Run ``args`` with stdout+stderr to ``output_file``; wall time and its own CPU time (wait4)."""
    with open(output_file, "wb") as out:
        begin = time.perf_counter()
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.01)
        wall = time.perf_counter() - begin
    process.returncode = os.waitstatus_to_exitcode(status)
    with open(output_file, encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    return Measured(wall, process.returncode, text, usage.ru_utime + usage.ru_stime)


def load() -> float:
    return os.getloadavg()[0]


def busy() -> str:
    """A warning when the 1-minute load average exceeds the CPU count, else ''."""
    one, five, _ = os.getloadavg()
    cpus = os.cpu_count() or 1
    if max(one, five) > cpus:
        return (f"WARNING: load average {one:.1f} (1 min) / {five:.1f} (5 min) on {cpus} CPUs: other work runs on "
                f"this machine, so wall times (and their ratios) are inflated; the CPU columns are not.")
    return ""
