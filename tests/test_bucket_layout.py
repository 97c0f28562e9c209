"""The bucket's layout: what decides under state/, listed apart from logs and results; an old campaign refused.

A campaign record without ``layout`` was written by burst 0.1.0, whose claims and
statuses sat beside each row's logs. This burst refuses to run or show it (it would
see none of its rows), and still downloads, merges and cleans it up.
"""

from __future__ import annotations

import csv
import json

import pytest

from burst import protocol
from burst.control.campaign_record import CampaignRecord, record_path
from burst.providers import make_provider
from burst.providers.base import ProviderOptions
from burst.providers.local import SandboxRegistry
from burst.records import Job
from burst.storage import open_storage
from tests.conftest import REPO, run_script, write_campaign

DISPATCHER = str(REPO / "dispatcher.py")


def test_a_listing_of_state_holds_records_only(tmp_path):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "mkdir -p results; echo v > results/r.csv; echo out")] * 3)
    result = run_script(DISPATCHER, "local", "lay", str(jobfile), "-c", "-d", "--wait", "--install", str(install))
    assert result.returncode == 0, result.stderr
    storage = open_storage((tmp_path / "burst-home" / "buckets" / "lay").as_uri())
    state = [obj.key for obj in storage.list_objects("state/")]
    assert {k for k in state if k.startswith(protocol.ENDED_PREFIX)} == {f"state/ended/lay{i}.json" for i in range(3)}
    claims = {k for k in state if k.startswith(protocol.CLAIMS_PREFIX)}
    assert claims <= {f"state/claims/lay{i}.json" for i in range(3)}, "claims (until swept) and statuses, a file each"
    assert all(k.endswith(".json") for k in state), "no log, no result under state/"
    everything = [obj.key for obj in storage.list_objects()]
    assert "lay0/attempts/1/results/r.csv" in everything and "lay0/attempts/1/logs/stdout.log" in everything
    assert json.loads(storage.read_text(protocol.CAMPAIGN_KEY))["layout"] == protocol.LAYOUT


def old_campaign(tmp_path, job: str, layout: int = 1) -> None:
    """What burst 0.1.0 left (``layout`` 1: its record has none, each row's status and results beside its
    logs), or burst 0.2.0 (layout 2: each row's claim and status in ``state/rows/<tag>/``)."""
    provider = make_provider("local", job, ProviderOptions())
    provider.prepare()
    jobs = [Job(tag=f"{job}{i}", instance_type="t3.micro", command="bench", line=i + 2) for i in range(2)]
    record = CampaignRecord(job=job, image="local", bucket_url=provider.bucket_url, jobs=jobs, options=ProviderOptions())
    storage = record.storage(provider)
    record.save(storage)
    for path in (record_path(job),):
        data = json.loads(path.read_text())
        del data["layout"]
        if layout > 1:
            data["layout"] = layout
        data["version"] = "0.1.0" if layout == 1 else "0.2.0"
        path.write_text(json.dumps(data))
    for i, row in enumerate(jobs):
        folder = f"{row.tag}/" if layout == 1 else f"{protocol.LAYOUT_2_ROWS_PREFIX}{row.tag}/"
        storage.write_text(f"{folder}claim.json", json.dumps({"tag": row.tag, "attempt": 1, "machine": "i-old", "slot": 0}))
        storage.write_text(f"{folder}status.json", json.dumps({"job": job, "tag": row.tag, "state": "done", "attempt": 1,
                                                                "exit_code": 0, "instance_type": "t3.micro"}))
        storage.write_text(f"{row.tag}/attempts/1/results/r.csv", f"value\n{i}\n")


@pytest.mark.parametrize("layout", [1, 2])
def test_an_old_campaign_is_refused_with_what_to_do_and_still_downloads_and_cleans_up(tmp_path, layout):
    old_campaign(tmp_path, "old", layout)
    version = "0.1.0" if layout == 1 else "0.2.0"
    bucket = tmp_path / "burst-home" / "buckets" / "old"
    before = sorted(p.relative_to(bucket).as_posix() for p in bucket.rglob("*") if p.is_file())

    shown = run_script("-m", "burst", "status", "old")
    assert shown.returncode == 2 and "Traceback" not in shown.stderr, shown.stderr
    said = " ".join(shown.stderr.split())
    assert f"job 'old' was started by burst {version}" in said and "keeps them in state/claims/ and state/ended/" in said
    assert "python -m burst cleanup old" in said and "python -m burst download old DIR" in said

    jobfile, install = write_campaign(tmp_path / "again", [("t3.micro", "bench")] * 2)
    resumed = run_script(DISPATCHER, "local", "old", str(jobfile), "-c", "-d", "--install", str(install))
    assert resumed.returncode == 2 and f"was started by burst {version}" in resumed.stderr, resumed.stderr
    assert sorted(p.relative_to(bucket).as_posix() for p in bucket.rglob("*") if p.is_file()) == before, "nothing changed"
    machines = SandboxRegistry(tmp_path / "burst-home").path
    assert not machines.exists() or json.loads(machines.read_text()) == {}, "no sandbox started"

    got = run_script(str(REPO / "get_s3_files.py"), "old", str(tmp_path / "out"), "--merge")
    assert got.returncode == 0, got.stderr
    with open(tmp_path / "out" / "results.csv", newline="") as handle:
        merged = list(csv.DictReader(handle))
    assert sorted((r["tag"], r["value"]) for r in merged) == [("old0", "0"), ("old1", "1")]

    cleaned = run_script("-m", "burst", "cleanup", "old", "--yes")
    assert cleaned.returncode == 0, cleaned.stderr
    assert not record_path("old").exists() and not bucket.exists()


def test_a_local_key_never_leaves_the_bucket_folder_even_through_a_symlink(tmp_path):
    import pytest

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("not the bucket's")
    bucket = tmp_path / "bucket"
    (bucket / "state").mkdir(parents=True)
    (bucket / "state" / "away").symlink_to(outside)
    (bucket / "state" / "file").symlink_to(outside / "secret")
    storage = open_storage(bucket.as_uri())
    for key in ("../outside/secret", "state/away/secret", "state/file", "state/../../outside/secret"):
        with pytest.raises(ValueError, match="leaves the bucket"):
            storage.read_text(key)
    storage.write_text("state/rows/t0/status.json", "{}")  # an ordinary key, its folder made on the way
    assert storage.read_text("state/rows/t0/status.json") == "{}"
