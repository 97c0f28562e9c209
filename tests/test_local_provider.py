"""The local provider's sandbox registry under concurrent use, and what terminate ends."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

from burst.providers.base import LaunchSpec
from burst.providers.local import LocalProvider
from tests.conftest import wait_until


def launch_many(burst_home: str, job: str, count: int) -> list[str]:
    provider = LocalProvider(job, burst_home)
    return [provider.launch(LaunchSpec(job, "t3.micro", "local"), 1)[0] for _ in range(count)]


def test_registry_loses_nothing_when_processes_launch_at_once(burst_home):
    jobs = [f"job{n}" for n in range(4)]
    with ProcessPoolExecutor(max_workers=4) as pool:
        launched = [i for ids in pool.map(launch_many, [str(burst_home)] * 4, jobs, [20] * 4) for i in ids]
    provider = LocalProvider("job0", burst_home)
    assert len(set(launched)) == 80
    assert sorted(i.id for job in jobs for i in LocalProvider(job, burst_home).list({"job": job})) == sorted(launched)
    assert [i.id for i in provider.list({"job": "job0", "instance_type": "t3.micro"})] == sorted(
        i.id for i in provider.list({"job": "job0"}))


def test_terminate_ends_the_sandbox_processes_and_nothing_else(burst_home):
    provider = LocalProvider("sand", burst_home)
    keep_id, end_id = provider.launch(LaunchSpec("sand", "t3.micro", "local"), 2)
    keep, end = provider.wait_ready([keep_id, end_id])
    for instance in (keep, end):
        home = provider.registry.home_of(instance.id)
        (home / "sleeper.sh").write_text("echo $$ > pid\nexec sleep 300\n")
        provider.transport(instance).start_detached("sleeper.sh", ".", "sleeper.log")
    pids = {i.id: int(wait_until(lambda i=i: (provider.registry.home_of(i.id) / "pid").exists()
                                 and (provider.registry.home_of(i.id) / "pid").read_text().strip(), what="sleeper"))
            for i in (keep, end)}
    outsider = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        provider.terminate([end_id])
        assert [i.id for i in provider.list({"job": "sand"})] == [keep_id]
        wait_until(lambda: subprocess.run(["kill", "-0", str(pids[end_id])], capture_output=True).returncode != 0
                   or open(f"/proc/{pids[end_id]}/stat").read().split(")")[-1].split()[0] == "Z", timeout=10, what="sleeper ended")
        assert subprocess.run(["kill", "-0", str(pids[keep_id])]).returncode == 0, "the other sandbox keeps running"
        assert outsider.poll() is None, "processes outside the sandbox are left alone"
    finally:
        provider.terminate([keep_id])
        outsider.kill()
