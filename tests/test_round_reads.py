"""The reconcile's rounds in layout 3: everything read once, then only the claims of rows not yet swept.

A campaign's bucket is written here by burst's own claim and status code, as workers
write it; ages are set with the files' times (a local bucket's clock is its files').
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

from burst import protocol
from burst.control.round_reads import SWEEP_ABOVE, RoundReads
from burst.node import claims
from burst.node.bucket_view import RecordCache
from burst.node.status_store import save_status
from burst.records import JobStatus, WorkerRecord
from burst.storage.localdir import LocalDirStorage

HEARTBEAT, LEASE = 1.0, 4.0


class CountedBucket(LocalDirStorage):
    """A local bucket that notes which prefixes were listed."""

    def __init__(self, url: str):
        super().__init__(url)
        self.listed: list[str] = []

    def list_objects(self, prefix: str = ""):
        self.listed.append(prefix)
        return super().list_objects(prefix)


def bucket(tmp_path) -> CountedBucket:
    (tmp_path / "bucket").mkdir(exist_ok=True)
    return CountedBucket((tmp_path / "bucket").as_uri())


def run_row(storage, tag: str, machine: str = "i-1", state: str = protocol.DONE, attempt_of=None) -> None:
    """Claim ``tag`` and end it as a worker does: the claim, then its status."""
    held = claims.try_claim(storage, tag, machine, 0, attempt_of, "t3.micro", "true")
    assert held is not None
    save_status(storage, JobStatus(job="r", tag=tag, state=state, instance_type="t3.micro", command="true",
                                   instance_id=machine, attempt=held.claim.attempt, exit_code=0))


def age(storage: LocalDirStorage, key: str, seconds: float) -> None:
    path = storage.root / key
    then = time.time() - seconds
    os.utime(path, (then, then))


def ended_long_ago(storage, tags) -> None:
    """Rows that ended an hour ago (their claims, then their statuses)."""
    for tag in sorted(tags):
        run_row(storage, tag)
        age(storage, protocol.claim_key(tag), 3600)
        age(storage, protocol.status_key(tag), 3590)


def worker_says(storage, machine: str, ran: list[str], state: str = "working") -> None:
    record = WorkerRecord(id=machine, instance_type="t3.micro", slots=1, state=state, rows=ran)
    storage.write_text(protocol.worker_key(machine), json.dumps(dataclasses.asdict(record)))


def test_after_the_first_round_only_live_claims_are_listed_and_every_ended_row_stays_done(tmp_path):
    storage = bucket(tmp_path)
    tags = {f"r{i}" for i in range(SWEEP_ABOVE)} | {"live0", "rerun0"}  # claims over a listing page
    ended_long_ago(storage, tags - {"live0"})
    claims.reopen(storage, "rerun0", 1, "forced (--force)")  # ended, then rerun: its claim is released
    claims.try_claim(storage, "live0", "i-1", 0, None, "t3.micro", "true")  # running now
    worker_says(storage, "i-1", [f"{tag}#1" for tag in sorted(tags - {"live0"})])
    rounds = RoundReads(RecordCache(), tags, HEARTBEAT, LEASE)

    first = rounds.read(storage)
    assert protocol.ENDED_PREFIX in storage.listed, "the first round reads every status"
    assert all(first.row_state(f"r{i}") == protocol.DONE for i in range(SWEEP_ABOVE))
    assert first.row_state("live0") == protocol.RUNNING and first.row_state("rerun0") == protocol.PENDING
    left = {key for key in storage.list_keys(protocol.CLAIMS_PREFIX) if key.endswith(protocol.CLAIM_SUFFIX)}
    assert left == {protocol.claim_key("live0"), protocol.claim_key("rerun0")}, \
        "the claims of rows ended two leases ago are swept; a running row's and a rerun's stay"

    storage.listed.clear()
    later = rounds.read(storage)
    assert protocol.ENDED_PREFIX not in storage.listed and protocol.CLAIMS_PREFIX in storage.listed
    assert {tag: later.row_state(tag) for tag in tags} == {tag: first.row_state(tag) for tag in tags}, \
        "a round that lists only the claims shows every row as the whole read did"


def test_a_round_learns_an_end_from_the_worker_record_or_a_silent_claim_without_listing_the_statuses(tmp_path):
    storage = bucket(tmp_path)
    tags = {"a0", "b0", "c0"}
    for tag in sorted(tags):
        claims.try_claim(storage, tag, "i-1", 0, None, "t3.micro", "true")
    worker_says(storage, "i-1", [])
    rounds = RoundReads(RecordCache(), tags, HEARTBEAT, LEASE)
    assert {tag: rounds.read(storage).row_state(tag) for tag in tags} == dict.fromkeys(tags, protocol.RUNNING)

    save_status(storage, JobStatus(job="r", tag="a0", state=protocol.DONE, instance_type="t3.micro", attempt=1))
    worker_says(storage, "i-1", ["a0#1"])  # the worker names a row once its status is written
    save_status(storage, JobStatus(job="r", tag="b0", state=protocol.FAILED, instance_type="t3.micro", attempt=1))
    age(storage, protocol.claim_key("b0"), 2 * HEARTBEAT)  # ...and a machine lost before it said so falls silent
    storage.listed.clear()
    view = rounds.read(storage)
    assert protocol.ENDED_PREFIX not in storage.listed
    assert {tag: view.row_state(tag) for tag in tags} == {"a0": protocol.DONE, "b0": protocol.FAILED,
                                                          "c0": protocol.RUNNING}


def test_a_rerun_written_between_a_rounds_listing_and_its_sweep_is_not_swept(tmp_path):
    class RerunDuringTheSweep(CountedBucket):
        """Another dispatcher (`run --force` in a second terminal) reruns r0 just before the sweep deletes it."""

        def delete_if_match(self, key: str, etag: str) -> bool:
            if key == protocol.claim_key("r0"):
                assert claims.reopen(self, "r0", 1, "forced (--force)")
            return super().delete_if_match(key, etag)

    (tmp_path / "bucket").mkdir()
    storage = RerunDuringTheSweep((tmp_path / "bucket").as_uri())
    tags = {f"e{i}" for i in range(SWEEP_ABOVE)} | {"r0"}  # claims over a listing page: a sweep
    ended_long_ago(storage, tags)
    rounds = RoundReads(RecordCache(), tags, HEARTBEAT, LEASE)
    rounds.read(storage)
    assert rounds.swept == SWEEP_ABOVE, "every other ended row's claim is swept"
    assert json.loads(storage.read_text(protocol.claim_key("r0")))["state"] == protocol.RELEASED
    assert rounds.read(storage).row_state("r0") == protocol.PENDING, "the rerun waits for a worker"


def test_a_worker_with_an_old_listing_never_claims_a_row_whose_claim_was_swept(tmp_path):
    storage = bucket(tmp_path)
    run_row(storage, "r0", machine="i-2")  # another machine ran it after this worker's listing...
    storage.delete_if_match(protocol.claim_key("r0"), storage.read_versioned(protocol.claim_key("r0"))[1])  # ...swept
    assert claims.try_claim(storage, "r0", "i-1", 0, None, "t3.micro", "true", unless_ended=True) is None
    assert protocol.claim_key("r0") not in storage.list_keys(), "nothing claimed, nothing run twice"


def test_a_campaign_of_fewer_claims_than_a_listing_page_pays_no_delete(tmp_path):
    storage = bucket(tmp_path)
    ended_long_ago(storage, {"s0", "s1", "s2"})
    rounds = RoundReads(RecordCache(), {"s0", "s1", "s2"}, HEARTBEAT, LEASE)
    assert all(rounds.read(storage).row_state(tag) == protocol.DONE for tag in ("s0", "s1", "s2"))
    assert rounds.swept == 0 and len(storage.list_keys(protocol.CLAIMS_PREFIX)) == 3, \
        "a round lists them in one request either way"
