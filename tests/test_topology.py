"""Whole cores per slot, from sysfs trees laid out as on real EC2 types (written by the tests, as the kernel does)."""

from __future__ import annotations

from pathlib import Path

import pytest

from burst.node import topology
from burst.node.bench import Bench
from burst.node.config import NodeConfig
from burst.node.processes import slot_placement

# Intel numbers a socket's cores with gaps; both sockets reuse the same core ids.
XEON_CORE_IDS = [0, 1, 2, 3, 4, 8, 9, 10, 11, 16, 17, 18, 19, 20, 24, 25, 26, 27]


def write_sysfs(root: Path, cpus: dict[int, tuple[int, int, str]], files=("core_cpus_list", "thread_siblings_list")) -> Path:
    """cpu -> (package, core_id, siblings list text), as /sys/devices/system/cpu/cpuN/topology holds them."""
    for cpu, (package, core_id, siblings) in cpus.items():
        folder = root / f"cpu{cpu}" / "topology"
        folder.mkdir(parents=True)
        (folder / "physical_package_id").write_text(f"{package}\n")
        (folder / "core_id").write_text(f"{core_id}\n")
        for name in files:
            (folder / name).write_text(f"{siblings}\n")
    (root / "online").write_text(f"0-{max(cpus)}\n")
    return root


def c5_2xlarge(root: Path, **kw) -> Path:
    """8 vCPUs, 4 cores: CPU n and n+4 are one core's two threads."""
    return write_sysfs(root, {n: (0, n % 4, f"{n % 4},{n % 4 + 4}") for n in range(8)}, **kw)


def m6i_4xlarge(root: Path) -> Path:
    """16 vCPUs, 8 cores: siblings n and n+8."""
    return write_sysfs(root, {n: (0, n % 8, f"{n % 8},{n % 8 + 8}") for n in range(16)})


def c6g_2xlarge(root: Path) -> Path:
    """Graviton: 8 vCPUs, 8 cores, no SMT."""
    return write_sysfs(root, {n: (0, n, str(n)) for n in range(8)})


def c5_18xlarge(root: Path) -> Path:
    """2 sockets x 18 cores x 2 threads: CPUs 0-17 socket 0, 18-35 socket 1, 36-71 their siblings (n + 36)."""
    cpus = {}
    for n in range(72):
        first = n % 36
        package = first // 18
        cpus[n] = (package, XEON_CORE_IDS[first % 18], f"{first},{first + 36}")
    return write_sysfs(root, cpus)


def placements(cores, slots):
    return [slot_placement(s, slots, cores) for s in range(slots)]


def assert_whole_cores_apart(cores, slots):
    """No CPU in two slots, and every slot holds each of its CPUs' siblings."""
    seen: set[int] = set()
    siblings = {cpu: set(core.cpus) for core in cores for cpu in core.cpus}
    for cpus, _ in placements(cores, slots):
        assert not seen & set(cpus), "a CPU in two slots"
        seen |= set(cpus)
        for cpu in cpus:
            assert siblings[cpu] <= set(cpus), f"CPU {cpu} without its sibling"


def test_c5_2xlarge_two_slots_get_two_whole_cores_each_not_halves_of_all_four(tmp_path):
    cores = topology.read_cores(c5_2xlarge(tmp_path), allowed=set(range(8)))
    assert [c.cpus for c in cores] == [(0, 4), (1, 5), (2, 6), (3, 7)]
    assert [c.name for c in cores] == ["0:0", "0:1", "0:2", "0:3"]
    assert placements(cores, 2) == [([0, 1, 4, 5], ["0:0", "0:1"]), ([2, 3, 6, 7], ["0:2", "0:3"])]
    assert_whole_cores_apart(cores, 2)
    assert_whole_cores_apart(cores, 4)
    assert placements(cores, 1) == [([], ["0:0", "0:1", "0:2", "0:3"])], "one slot: unpinned, every core"


def test_m6i_4xlarge_siblings_n_and_n_plus_8(tmp_path):
    cores = topology.read_cores(m6i_4xlarge(tmp_path), allowed=set(range(16)))
    assert len(cores) == 8 and topology.threads_per_core(cores) == 2
    assert placements(cores, 4)[1] == ([2, 3, 10, 11], ["0:2", "0:3"])
    assert_whole_cores_apart(cores, 8)


def test_c6g_2xlarge_without_smt_every_cpu_is_a_core(tmp_path):
    cores = topology.read_cores(c6g_2xlarge(tmp_path), allowed=set(range(8)))
    assert len(cores) == 8 and topology.threads_per_core(cores) == 1
    assert [cpus for cpus, _ in placements(cores, 8)] == [[n] for n in range(8)]
    # 3 slots of 8 cores: 2 each (equal slots time alike), 2 cores left idle
    assert [cpus for cpus, _ in placements(cores, 3)] == [[0, 1], [2, 3], [4, 5]]


def test_two_sockets_keep_a_slot_on_one_socket_and_core_ids_apart(tmp_path):
    cores = topology.read_cores(c5_18xlarge(tmp_path), allowed=set(range(72)))
    assert len(cores) == 36 and len({c.name for c in cores}) == 36, "core_id repeats per socket; names do not"
    assert {c.package for c in cores} == {0, 1}
    (first, first_names), (second, second_names) = placements(cores, 2)
    assert first == sorted([*range(0, 18), *range(36, 54)]) and all(n.startswith("0:") for n in first_names)
    assert second == sorted([*range(18, 36), *range(54, 72)]) and all(n.startswith("1:") for n in second_names)
    assert "1:27" in second_names
    assert_whole_cores_apart(cores, 36)


@pytest.mark.parametrize("only", ["core_cpus_list", "thread_siblings_list"])
def test_either_siblings_file_is_read(tmp_path, only):
    """core_cpus_list is the kernel's name since 5.x; thread_siblings_list is what older kernels have."""
    cores = topology.read_cores(c5_2xlarge(tmp_path, files=(only,)), allowed=set(range(8)))
    assert [c.cpus for c in cores] == [(0, 4), (1, 5), (2, 6), (3, 7)]


def test_ranges_in_sibling_lists_and_a_restricted_affinity(tmp_path):
    """AMD numbers siblings side by side ("0-1"); a process allowed only some CPUs gets cores of those only."""
    root = write_sysfs(tmp_path, {n: (0, n // 2, f"{n - n % 2}-{n - n % 2 + 1}") for n in range(8)})
    assert [c.cpus for c in topology.read_cores(root, allowed=set(range(8)))] == [(0, 1), (2, 3), (4, 5), (6, 7)]
    assert [c.cpus for c in topology.read_cores(root, allowed={0, 1, 2})] == [(0, 1), (2,)]


def test_no_sysfs_makes_every_cpu_a_core_of_its_own(tmp_path):
    cores = topology.read_cores(tmp_path / "absent", allowed={0, 1, 2})
    assert [c.cpus for c in cores] == [(0,), (1,), (2,)]
    assert topology.parse_cpu_list("0-2,x") == [] and topology.parse_cpu_list("3,1-2\n") == [1, 2, 3]


def test_more_slots_than_cores_share_round_robin_and_auto_is_one_per_core(tmp_path):
    root = c5_2xlarge(tmp_path)
    cores = topology.read_cores(root, allowed=set(range(8)))
    assert [cpus for cpus, _ in placements(cores, 6)][4:] == [[0, 4], [1, 5]]
    config = NodeConfig(provider="local", job="j", instance_id="i", instance_type="c5.2xlarge", bucket_url="", results=[],
                        slots="auto")
    assert config.slot_count(len(cores)) == 4


def test_the_worker_bench_reads_the_configured_sysfs(tmp_path, monkeypatch):
    """What a worker on a c5.2xlarge with --slots auto would pin, and what its record says of the machine."""
    monkeypatch.setattr(topology.os, "sched_getaffinity", lambda pid: set(range(8)))
    config = NodeConfig(provider="local", job="j", instance_id="i", instance_type="c5.2xlarge", bucket_url="", results=[],
                        slots="auto")
    bench = Bench(config, sysfs=str(c5_2xlarge(tmp_path)))
    assert bench.slots == 4 and [p[0] for p in bench.placements] == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert bench.record_facts()["topology"] == {"cores": 4, "threads_per_core": 2, "packages": 1, "cpus": 8}
    assert bench.row_facts("j3.r2", 1) == {"cores": ["0:1"], "repeat": 2, "machine_score": None}
