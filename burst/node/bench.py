"""What a worker knows for timing fidelity: where each slot sits (whole cores) and how fast its machine measured.

Kept apart from the worker's claim loop: the worker asks it to pin a slot, for a
row's facts (cores, repetition, machine score) and for its record's (topology,
calibration). Standard library only; runs on Python 3.9.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from burst import protocol
from burst.node import calibrate, topology
from burst.node.config import NodeConfig
from burst.node.processes import slot_placement


class Bench:
    def __init__(self, config: NodeConfig, sysfs: str = topology.SYSFS_CPUS):
        self.config = config
        self.cores = topology.read_cores(sysfs)
        self.slots = config.slot_count(len(self.cores))
        self.placements = [slot_placement(slot, self.slots, self.cores) for slot in range(self.slots)]
        self.calibration: dict[str, Any] = {}

    def calibrate(self, log: Callable[[str], None]) -> None:
        """The machine's calibration (burst.node.calibrate), unless --no-calibrate; a failure is logged, never fatal."""
        if self.slots > len(self.cores):
            log(f"{self.slots} slots on {len(self.cores)} physical cores: slots share cores, and their timings disturb each other")
        if not self.config.calibrate:
            return
        try:
            self.calibration = calibrate.calibrate([cpus for cpus, _ in self.placements])
        except OSError as error:  # no python to start, no memory: the rows run all the same
            self.calibration = {"score": None, "error": f"{type(error).__name__}: {error}"}
        log(f"calibration: score {self.calibration.get('score')} ({self.calibration.get('seconds')} s)")

    def pin(self, slot: int) -> list[int]:
        """Pin the calling thread (and the commands it starts) to the slot's CPUs; [] = one slot, unpinned."""
        cpus = self.placements[slot][0]
        if cpus:
            os.sched_setaffinity(0, cpus)
        return cpus

    def row_facts(self, tag: str, slot: int) -> dict[str, Any]:
        """A row's status fields: its slot's cores, its repetition, its machine's score."""
        return {"cores": self.placements[slot][1], "repeat": protocol.split_unit(tag)[1],
                "machine_score": self.calibration.get("score")}

    def record_facts(self) -> dict[str, Any]:
        cores = self.cores
        return {"topology": {"cores": len(cores), "threads_per_core": topology.threads_per_core(cores),
                             "packages": len({c.package for c in cores}), "cpus": sum(len(c.cpus) for c in cores)},
                "calibration": self.calibration}
