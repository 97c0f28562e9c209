"""Records are written whole or not at all: a writer SIGKILLed at any moment never leaves a truncated file."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from burst.atomic import write_atomically
from burst.storage.localdir import LocalDirStorage
from tests.conftest import REPO

# Each writer rewrites its records forever, each version a large JSON document written in many
# small chunks (so that a kill lands inside a write most of the time), and prints a line per version.
WRITER = r"""
import json, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from burst.atomic import write_atomically
from burst.control.campaign_record import CampaignRecord
from burst.providers import ProviderOptions
from burst.records import Job, JobStatus
from burst.node.status_store import save_status
from burst.storage.localdir import LocalDirStorage

kind, folder = sys.argv[1], Path(sys.argv[2])
storage = LocalDirStorage(folder.joinpath("bucket").as_uri())
version = 0
while True:
    version += 1
    if kind == "helper":
        document = json.dumps({{"version": version, "rows": ["x" * 100] * 20000}})
        def chunked(handle, text=document.encode()):
            for start in range(0, len(text), 4096):
                handle.write(text[start:start + 4096])
                handle.flush()
        write_atomically(folder / "record.json", chunked)
    elif kind == "status":
        save_status(storage, JobStatus(job="j", tag="j0", state="done", attempt=version, note="n" * 2_000_000))
    else:
        jobs = [Job(tag=f"j{{i}}", instance_type="t3.micro", command="c" * 200, line=i) for i in range(10000)]
        CampaignRecord(job="killed", image="local", bucket_url=storage.url, jobs=jobs, options=ProviderOptions(),
                       job_file=str(version)).save(storage)
    print(version, flush=True)
"""


def written_files(kind: str, folder: Path, burst_home: Path) -> list[Path]:
    return {"helper": [folder / "record.json"], "status": [folder / "bucket" / "state" / "ended" / "j0.json"],
            "campaign": [burst_home / "campaigns" / "killed.json", folder / "bucket" / "campaign.json"]}[kind]


@pytest.mark.parametrize("kind", ["helper", "status", "campaign"])
def test_a_writer_killed_at_any_moment_never_leaves_a_truncated_record(tmp_path, burst_home, kind):
    rng = random.Random(kind)
    script = WRITER.format(repo=str(REPO))
    for round_ in range(8):
        writer = subprocess.Popen([sys.executable, "-c", script, kind, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        try:
            versions = rng.randint(1, 3)  # let it finish some versions, then kill it within a later one
            for _ in range(versions):
                assert writer.stdout.readline().strip(), "the writer died on its own"
            time.sleep(rng.uniform(0, 0.1))  # varies where in the next write the kill lands (asserts nothing)
            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=10)
        finally:
            if writer.poll() is None:
                writer.kill()
            writer.stdout.close()
        for path in written_files(kind, tmp_path, burst_home):
            data = json.loads(path.read_text(encoding="utf-8"))  # whole JSON, or this raises
            assert data, f"{path} is empty after kill {round_}"
        if kind == "helper":
            record = json.loads((tmp_path / "record.json").read_text())
            assert record["version"] >= versions and len(record["rows"]) == 20000, "a version the writer completed"
    leftovers = [p.name for p in tmp_path.rglob("*.part")]
    assert all(name.startswith(".") for name in leftovers), "only hidden temp files may be left by a kill"
    if kind == "status":
        listed = [obj.key for obj in LocalDirStorage((tmp_path / "bucket").as_uri()).list_objects()]
        assert [key for key in listed if not key.startswith("j0/attempts/")] == ["state/ended/j0.json"], \
            "a killed write's temp file is never listed as an object"
        assert all(key.endswith("/status.json") for key in listed if key.startswith("j0/attempts/"))  # earlier attempts'



def test_exclusive_create_is_whole_and_refuses_a_second_writer(tmp_path):
    target = tmp_path / "bucket" / "claim.json"
    write_atomically(target, '{"attempt": 1}\n', exclusive=True)
    with pytest.raises(FileExistsError):
        write_atomically(target, '{"attempt": 2}\n', exclusive=True)
    assert json.loads(target.read_text()) == {"attempt": 1}
    assert [p.name for p in target.parent.iterdir()] == ["claim.json"], "the loser's temp file is removed"
