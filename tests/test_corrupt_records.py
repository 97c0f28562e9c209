"""Records that rot: every one is a named condition, never a traceback, a loop or an endless launch.

Each record type is corrupted four ways (garbage, truncated, wrong types, bytes
that are not UTF-8): in a local campaign's bucket folder (the whole dispatcher,
its sandboxes and workers) and in S3 (moto over HTTP), where the dispatcher's and
the workers' reading of the bucket must agree on every row.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from burst import protocol
from burst.control.decide import Policy, World, decide
from burst.node.bucket_view import RecordCache, read_bucket, read_rows_worth_a_look
from burst.node.claims import reopen, try_claim
from burst.records import Claim, JobStatus
from burst.storage import Storage
from burst.storage.localdir import LocalDirStorage
from burst.storage.s3 import S3Storage
from tests.conftest import REPO, run_script, status_report
from tests.motoserver import moto_server  # noqa: F401  (fixture)
from tests.seaweed import seaweed_s3  # noqa: F401  (fixture)

DISPATCHER = str(REPO / "dispatcher.py")


def corruptions(good: dict) -> dict[str, bytes]:
    """Four ways a record rots: garbage, a truncated write, the wrong types, bytes that are not UTF-8."""
    text = json.dumps(good)
    wrong = {key: (str(value) if isinstance(value, int) and not isinstance(value, bool) else 7) for key, value in good.items()}
    return {
        "garbage": b"\x00garbage{{{",
        "truncated": text[: len(text) // 2].encode(),
        "wrong types": json.dumps(wrong).encode(),
        "not UTF-8": text.encode().replace(b'"', b"\xff", 1),
    }


KINDS = ["garbage", "truncated", "wrong types", "not UTF-8"]


# -- in a local campaign: what the user sees, and that it ends ----------------------------------------


def sandboxes(burst_home: Path) -> int:
    registry = burst_home / "instances" / "registry.json"
    return len(json.loads(registry.read_text())) if registry.exists() else 0


def run_campaign(tmp_path, job: str, rows: list[str], *extra: str):
    jobfile = tmp_path / f"{job}.csv"
    jobfile.write_text("instance_type,command\n" + "".join(f"t3.micro,{command}\n" for command in rows))
    (tmp_path / job).mkdir(exist_ok=True)
    return run_script(DISPATCHER, "local", job, str(jobfile), "-c", "-d", "--wait", "--heartbeat", "1",
                      "--machines", "1", *extra, timeout=180)


@pytest.mark.parametrize("kind", KINDS)
def test_an_unreadable_status_is_unknown_shown_and_launches_nothing_until_force(tmp_path, burst_home, kind):
    result = run_campaign(tmp_path, "rot", ["echo one", "echo two"])
    assert result.returncode == 0, result.stderr
    bucket = burst_home / "buckets" / "rot"
    good = json.loads((bucket / protocol.status_key("rot0")).read_text())
    (bucket / protocol.status_key("rot0")).write_bytes(corruptions(good)[kind])
    started = sandboxes(burst_home)

    status = run_script("-m", "burst", "status", "rot")
    assert status.returncode == 1 and "Traceback" not in status.stderr, status.stderr
    assert f"{protocol.status_key('rot0')} is unreadable: " in status.stderr
    rows = {row["tag"]: row for row in status_report("rot")["rows"]}
    assert rows["rot0"]["state"] == "unknown" and "--force" in rows["rot0"]["note"]
    assert rows["rot1"]["state"] == "done"

    again = run_campaign(tmp_path, "rot", ["echo one", "echo two"])  # ends at once: nothing to launch for
    assert again.returncode == 1 and "Traceback" not in again.stderr, again.stderr
    assert sandboxes(burst_home) == started, "a machine was launched for a row the workers consider ended"

    forced = run_campaign(tmp_path, "rot", ["echo one", "echo two"], "--force")
    assert forced.returncode == 0, forced.stderr
    status = json.loads((bucket / protocol.status_key("rot0")).read_text())
    assert status["state"] == "done" and status["attempt"] == 2  # after the last attempt the bucket holds
    assert (bucket / "rot0/attempts/1/logs/stdout.log").read_text() == "one\n"  # the unknown attempt's files stay


@pytest.mark.parametrize("kind", KINDS)
def test_a_claim_that_rots_while_its_row_runs_stops_it_and_the_campaign_ends(tmp_path, burst_home, kind):
    """The worker's next renewal finds the claim changed and unreadable: not its own, so the attempt stops;
    no worker spins on it, the row is unknown, ``--wait`` ends, one sandbox was started."""
    bucket = burst_home / "buckets" / "rotc"
    marker = tmp_path / "started"
    import threading

    def corrupt_when_running():
        from tests.conftest import wait_until

        wait_until(marker.exists, timeout=120, what="the row running")
        good = json.loads((bucket / protocol.claim_key("rotc0")).read_text())
        (bucket / protocol.claim_key("rotc0")).write_bytes(corruptions(good)[kind])

    thread = threading.Thread(target=corrupt_when_running, daemon=True)
    thread.start()
    result = run_campaign(tmp_path, "rotc", [f"touch {marker}; sleep 60"])
    thread.join(timeout=5)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert sandboxes(burst_home) == 1
    status = run_script("-m", "burst", "status", "rotc")
    assert f"{protocol.claim_key('rotc0')} is unreadable: " in status.stderr and "Traceback" not in status.stderr
    assert status_report("rotc")["rows"][0]["state"] == "unknown"
    worker_logs = list((burst_home / "instances").glob("*/burst/rotc/*/logs/worker.log"))
    assert worker_logs and all("Traceback" not in log.read_text() for log in worker_logs)


def test_an_unreadable_campaign_json_is_written_again_by_the_dispatcher(tmp_path, burst_home):
    result = run_campaign(tmp_path, "rotj", ["echo one"])
    assert result.returncode == 0, result.stderr
    shared = burst_home / "buckets" / "rotj" / "campaign.json"
    shared.write_bytes(b"{\"jobs\": [\xff")
    status = run_script("-m", "burst", "status", "rotj")
    assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
    assert "campaign.json is unreadable: not UTF-8" in status.stderr and "written again" in status.stderr
    assert [row["tag"] for row in json.loads(shared.read_text())["jobs"]] == ["rotj0"]


@pytest.mark.parametrize("which", ["campaign record", "sandbox registry"])
def test_unreadable_records_under_burst_home_are_one_message(tmp_path, burst_home, which):
    result = run_campaign(tmp_path, "roth", ["echo one"])
    assert result.returncode == 0, result.stderr
    path = burst_home / ("campaigns/roth.json" if which == "campaign record" else "instances/registry.json")
    path.write_text('{"jobs": 3}' if which == "campaign record" else "[1, 2")
    status = run_script("-m", "burst", "status", "roth")
    assert status.returncode == 1 and "Traceback" not in status.stderr, status.stderr
    assert f"{path} is unreadable: " in status.stderr and len(status.stderr.strip().splitlines()) <= 3
    download = run_script("-m", "burst", "download", "roth", str(tmp_path / "out"), "--merge")
    assert "Traceback" not in download.stderr, download.stderr
    if which == "campaign record":  # the bucket is found through it
        assert download.returncode == 1 and f"{path} is unreadable: " in download.stderr
    else:  # the sandboxes' registry has nothing to do with a download
        assert download.returncode == 0 and (tmp_path / "out" / "results.csv").is_file()


# -- the same rows in S3 (moto) and in a folder: dispatcher and workers agree -----------------------


@pytest.fixture(params=["local", "s3", "seaweedfs"])
def storage(request, tmp_path) -> Storage:
    if request.param == "local":
        return LocalDirStorage((tmp_path / "bucket").as_uri())
    if request.param == "seaweedfs":
        return S3Storage(f"s3://{request.getfixturevalue('seaweed_s3')}/job")
    request.getfixturevalue("moto_server")
    boto3.client("s3").create_bucket(Bucket="burst-rot")
    return S3Storage("s3://burst-rot/job")


def _row_of(storage: Storage, tag: str, ended: bool) -> None:
    held = try_claim(storage, tag, "i-1", 0, None, "t3.micro", "true")
    if ended:
        status = JobStatus(job="job", tag=tag, state=protocol.DONE, attempt=held.claim.attempt, exit_code=0)
        storage.write_text(protocol.status_key(tag), json.dumps(status.to_dict()))
        storage.write_text(f"{tag}/attempts/1/logs/stdout.log", "kept\n")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("record", ["status", "claim", "status without claim"])
def test_every_rot_is_unknown_to_dispatcher_and_workers_alike(storage, kind, record):
    from burst.records import Job

    tags = {"r0", "r1"}
    _row_of(storage, "r0", ended=True)
    _row_of(storage, "r1", ended=True)
    key = protocol.claim_key("r0") if record == "claim" else protocol.status_key("r0")
    good = json.loads(storage.read_text(key))
    if record == "status without claim":
        storage.delete_keys([protocol.claim_key("r0")])
    if record == "claim":  # a claim written after the status (e.g. a rerun's) that rotted
        storage.delete_keys([protocol.status_key("r0")])
    _write_bytes(storage, key, corruptions(good)[kind])

    view = read_bucket(storage, RecordCache(), tags)
    assert view.row_state("r0") == protocol.UNKNOWN and view.row_state("r1") == protocol.DONE
    assert view.unreadable[key].startswith(f"{key} is unreadable: ")
    rows = [Job(tag, "t3.micro", "true", 1) for tag in sorted(tags)]
    actions = decide(World(rows=rows, bucket=view, live=[]), Policy({"t3.micro": 2}, 1, 30.0, 2, may_launch=True))
    assert not actions.launch and not actions.requeue, actions
    worker_view, free = read_rows_worth_a_look(storage, RecordCache(), tags, lease=0.0)  # every lease expired
    assert free == set() and "r0" not in worker_view.claims

    assert reopen(storage, "r0", 0, "forced (--force)")  # --force: it reruns after the last attempt held
    claim = Claim.from_dict(json.loads(storage.read_text(protocol.claim_key("r0"))))
    assert claim.state == protocol.RELEASED and claim.attempt == 1
    view = read_bucket(storage, RecordCache(), tags)
    assert view.row_state("r0") == protocol.PENDING


def _write_bytes(storage: Storage, key: str, data: bytes) -> None:
    if isinstance(storage, LocalDirStorage):
        storage._path(key).write_bytes(data)
    else:
        storage.client.put_object(Bucket=storage.bucket, Key=storage._full_key(key), Body=data)


def test_a_worker_record_in_another_machines_folder_is_not_taken_for_that_machines(storage):
    """A machine writes only its own folder (``<role id>:<instance id>``, or its bare id): a record there that
    names another machine (a row's command could write one) is named unreadable, and the machine it names
    keeps what its own worker said; of its own records (an older worker's under the bare id) the newest counts."""
    import dataclasses

    from burst.records import WorkerRecord

    def write(folder: str, record: WorkerRecord) -> None:
        storage.write_text(protocol.worker_key(folder), json.dumps(dataclasses.asdict(record)))

    write("AROAEXAMPLE:i-1", WorkerRecord(id="i-1", instance_type="t3.micro", slots=1, state="working", rows=["r1#1"],
                                          heartbeat="2026-11-24T08:00:10.000+00:00"))
    write("i-1", WorkerRecord(id="i-1", instance_type="t3.micro", slots=1, state="working", rows=["r0#1"],
                              heartbeat="2026-11-24T08:00:00.000+00:00"))
    forged = protocol.worker_key("AROAEXAMPLE:i-2")
    write("AROAEXAMPLE:i-2", WorkerRecord(id="i-1", instance_type="t3.micro", slots=1, state="finished"))

    view = read_bucket(storage, RecordCache(), {"r0", "r1"})
    assert set(view.workers) == {"i-1"} and view.workers["i-1"][0].state == "working"
    assert view.workers["i-1"][0].rows == ["r1#1"], "the newer of its own records, though written first"
    assert view.unreadable[forged] == "a worker record of i-1 in the folder of i-2"
