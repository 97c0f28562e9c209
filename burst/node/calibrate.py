"""A machine's calibration: a fixed, short measure of CPU and memory speed on each slot's cores, all slots at once.

Two machines of one instance type can differ (a noisy neighbour, another CPU
generation behind the same name); this makes it visible. When its worker starts,
before it claims anything, each slot runs, pinned to its own cores and at the same
time as the other slots (as rows will run):

* **cpu**: a fixed integer loop (a linear congruential step, in pure Python) for
  ``CPU_SECONDS``; the rate is million steps per second. It measures one core's
  speed as an interpreter sees it: clock, turbo, caches, a neighbour's load.
* **memory**: copies of a ``MEMORY_MIB`` MiB buffer (larger than most caches) for
  ``MEMORY_SECONDS``; the rate is GB copied per second.

A slot's score is the geometric mean of the two rates; the machine's score is
the median of its slots'. The numbers have no unit worth quoting: compare them
between machines of one type (``status`` and the plot flag a machine more than
10% from its type's median). The whole calibration takes about 2 s and never
more than ``LIMIT_SECONDS`` (5 s): a slot not done by then is stopped and left
out. Standard library only; runs on Python 3.9.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import time

CPU_SECONDS = 0.8
MEMORY_SECONDS = 0.8
MEMORY_MIB = 64
LIMIT_SECONDS = 5.0
OFF_BY = 0.10  # a machine whose score is this far from its type's median is flagged

# Run by ``python3 -c`` in each slot: its own process, so slots measure at once (no GIL between them).
PROBE = r"""
import json, os, sys, time
cpus = [int(c) for c in sys.argv[3].split(",") if c]
if cpus:
    os.sched_setaffinity(0, cpus)
def steps(n):
    x = 1
    for i in range(n):
        x = (x * 1103515245 + 12345 + i) & 0xFFFFFFFF
    return x
end = time.perf_counter() + float(sys.argv[1]); start = time.perf_counter(); done = 0
while time.perf_counter() < end:
    steps(20000); done += 20000
cpu = done / (time.perf_counter() - start) / 1e6
source = bytearray(os.urandom(1 << 20)) * int(sys.argv[4]); target = bytearray(len(source))
end = time.perf_counter() + float(sys.argv[2]); start = time.perf_counter(); copied = 0
while time.perf_counter() < end:
    target[:] = source; copied += len(source)
memory = copied / (time.perf_counter() - start) / 1e9
print(json.dumps({"cpu": round(cpu, 3), "memory": round(memory, 3)}))
"""


def slot_score(cpu: float, memory: float) -> float:
    return round(math.sqrt(max(cpu, 0.0) * max(memory, 0.0)), 3)


def calibrate(placements: list[list[int]], python: str = sys.executable) -> dict:
    """Measure every slot at once (``placements``: each slot's CPUs, [] = unpinned); the machine's calibration record.

    ``{"score", "slots": [{"slot", "cpus", "cpu", "memory", "score"}], "seconds", "method"}``;
    a slot that failed or overran carries ``"error"`` instead of rates, and with no
    slot measured the score is None.
    """
    began = time.monotonic()
    probes = [subprocess.Popen([python, "-c", PROBE, str(CPU_SECONDS), str(MEMORY_SECONDS),
                                ",".join(map(str, cpus)), str(MEMORY_MIB)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for cpus in placements]
    slots = []
    for slot, (cpus, probe) in enumerate(zip(placements, probes)):
        entry: dict = {"slot": slot, "cpus": cpus}
        try:
            out, err = probe.communicate(timeout=max(0.1, LIMIT_SECONDS - (time.monotonic() - began)))
            rates = json.loads(out) if probe.returncode == 0 else None
            if rates is None:
                entry["error"] = (err.strip().splitlines() or [f"exit status {probe.returncode}"])[-1]
            else:
                entry.update(rates, score=slot_score(rates["cpu"], rates["memory"]))
        except subprocess.TimeoutExpired:
            probe.kill()
            probe.communicate()
            entry["error"] = f"not done within {LIMIT_SECONDS:g} s"
        except ValueError as error:
            entry["error"] = f"unreadable answer: {error}"
        slots.append(entry)
    scores = [s["score"] for s in slots if "score" in s]
    return {"score": round(statistics.median(scores), 3) if scores else None, "slots": slots,
            "seconds": round(time.monotonic() - began, 2),
            "method": f"cpu {CPU_SECONDS:g} s + memory {MEMORY_SECONDS:g} s ({MEMORY_MIB} MiB copies) per slot, at once"}


def outliers(scores: dict[str, tuple[str, float | None]]) -> dict[str, float]:
    """machine -> how far its score is from its type's median (a fraction, e.g. -0.14), for those more than ``OFF_BY`` off.

    ``scores``: machine id -> (instance type, score or None). A type needs at least
    two scored machines to have a median worth comparing with.
    """
    by_type: dict[str, list[float]] = {}
    for kind, score in scores.values():
        if score:
            by_type.setdefault(kind, []).append(score)
    flagged = {}
    for machine, (kind, score) in scores.items():
        peers = by_type.get(kind, [])
        if not score or len(peers) < 2:
            continue
        median = statistics.median(peers)
        off = (score - median) / median
        if abs(off) > OFF_BY:
            flagged[machine] = round(off, 3)
    return flagged
