"""Wall clock and CPU time of a command and of everything it leaves behind (for the benches).

burst starts detached processes (`nohup setsid`: setup.sh, the workers), which
the kernel would re-parent to init, so their CPU time would be lost. This process
makes itself a child subreaper (Linux prctl), so they are re-parented here, and
reaps them: `resource.getrusage(RUSAGE_CHILDREN)` then holds the CPU time of the
whole tree. CPU seconds do not depend on what else the machine runs, wall
seconds do: `Others` measures how much CPU other work on the machine took
meanwhile, and `contention()` says when that inflated the wall times.
"""

from __future__ import annotations

import ctypes
import os
import resource
import subprocess
import threading
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
        time.sleep(0.2)


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
        killer = threading.Timer(timeout, process.kill)  # a blocking wait4 costs no CPU, unlike polling
        killer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - begin
    process.returncode = os.waitstatus_to_exitcode(status)
    with open(output_file, encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    return Measured(wall, process.returncode, text, usage.ru_utime + usage.ru_stime)


def machine_cpu() -> float:
    """CPU seconds the whole machine has been busy (all processes, all CPUs), from /proc/stat."""
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class Others:
    """CPU seconds that processes other than this one and its descendants used meanwhile.

    Load averages lag and count our own processes; this does not: the machine's busy
    time minus ours. ``start()`` before the command, ``stop()`` once its leftovers are reaped.
    """

    def start(self) -> "Others":
        self.began = time.perf_counter()
        self.marks = (machine_cpu(), self_cpu(), children_cpu())
        return self

    def stop(self) -> float:
        machine, own, children = self.marks
        self.wall = time.perf_counter() - self.began
        self.seconds = max(0.0, (machine_cpu() - machine) - (self_cpu() - own) - (children_cpu() - children))
        return self.seconds


def contention(others: list[float], walls: list[float], extra: str = "") -> str:
    """A warning when other work took more than 10 % of the CPUs during the measurements, else ''."""
    cpus = os.cpu_count() or 1
    share = sum(others) / max(1e-9, sum(walls) * cpus)
    if share > 0.10:
        return (f"WARNING: other processes on this machine used {sum(others):.1f} CPU s ({100 * share:.0f} % of its "
                f"{cpus} CPUs) during the measurements: wall times (and their ratios) are inflated{extra}.")
    return ""
