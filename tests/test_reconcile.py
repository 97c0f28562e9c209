"""The reconcile's pure decision, from records to actions: what a round would do, without doing it."""

from __future__ import annotations

from burst import protocol
from burst.control.decide import Policy, World, decide
from burst.node.bucket_view import BucketView, HeldClaim
from burst.records import Claim, InstanceInfo, Job, JobStatus, MachineRecord, WorkerRecord

NOW = 1_000_000.0


def rows(n: int, kind: str = "t3.micro") -> list[Job]:
    return [Job(tag=f"j{i}", instance_type=kind, command="true", line=i + 2) for i in range(n)]


def machine(instance_id: str, kind: str = "t3.micro") -> InstanceInfo:
    return InstanceInfo(id=instance_id, job="j", instance_type=kind, state="running")


def held(tag: str, on: str, attempt: int = 1, age: float = 0.0) -> HeldClaim:
    return HeldClaim(Claim(tag=tag, attempt=attempt, machine=on, slot=0), etag="e", modified=NOW - age)


def policy(machines: int = 3, retries: int = 2, may_launch: bool = True) -> Policy:
    return Policy(machines={"t3.micro": machines, "c5.large": machines}, slots=1, heartbeat=1.0, retries=retries,
                  may_launch=may_launch)


def test_launches_up_to_the_pool_size_and_no_more_than_the_rows_need():
    assert decide(World(rows(40), BucketView(NOW), []), policy(3)).launch == {"t3.micro": 3}
    assert decide(World(rows(2), BucketView(NOW), []), policy(3)).launch == {"t3.micro": 2}
    live = [machine("i-1"), machine("i-2"), machine("i-3")]
    assert decide(World(rows(40), BucketView(NOW), live), policy(3)).launch == {}


def test_a_silent_lease_is_requeued_and_replaced_and_the_last_retry_ends_the_row():
    bucket = BucketView(NOW, claims={"j0": held("j0", "i-1", age=10.0)})
    actions = decide(World(rows(1), bucket, [machine("i-1")]), policy())
    assert [(r.tag, r.final) for r in actions.requeue] == [("j0", False)]
    assert "missed its heartbeats for 10 s (lease 4 s)" in actions.requeue[0].reason

    bucket = BucketView(NOW, claims={"j0": held("j0", "i-gone", attempt=3)})
    actions = decide(World(rows(1), bucket, []), policy(retries=2))
    assert [(r.tag, r.final) for r in actions.requeue] == [("j0", True)]
    assert "lost its machine i-gone" in actions.requeue[0].reason and actions.launch == {}


def test_a_fresh_lease_and_a_final_row_are_left_alone():
    bucket = BucketView(NOW, claims={"j0": held("j0", "i-1", age=1.0), "j1": held("j1", "i-gone")},
                        statuses={"j1": JobStatus(job="j", tag="j1", state=protocol.DONE, attempt=1)})
    actions = decide(World(rows(2), bucket, [machine("i-1")]), policy())
    assert not actions


def test_machines_that_finished_failed_or_fell_silent_are_ended():
    live = [machine(i) for i in ("i-fin", "i-note", "i-dead", "i-bad", "i-keep")]
    bucket = BucketView(NOW, workers={
        "i-fin": (WorkerRecord(id="i-fin", instance_type="t3.micro", slots=1, state="finished"), NOW - 1),
        "i-note": (WorkerRecord(id="i-note", instance_type="t3.micro", slots=1, state="finished",
                                note="could not end its machine: RequestLimitExceeded"), NOW - 1),
        "i-dead": (WorkerRecord(id="i-dead", instance_type="t3.micro", slots=1), NOW - 30),
        "i-keep": (WorkerRecord(id="i-keep", instance_type="t3.micro", slots=1, state="finished", keep_machine=True), NOW - 99),
    }, machines={"i-bad": MachineRecord(id="i-bad", instance_type="t3.micro", state=protocol.INSTALL_FAILED, note="exit 3")})
    ended = {end.id: end.reason for end in decide(World([], bucket, live), policy()).end}
    assert set(ended) == {"i-note", "i-dead", "i-bad"}, "i-fin may still be ending itself; i-keep holds unsaved files"
    assert "RequestLimitExceeded" in ended["i-note"] and "stopped heartbeating" in ended["i-dead"]


def test_a_type_whose_installs_keep_failing_fails_its_rows_instead_of_launching_forever():
    failed = {f"i-{n}": MachineRecord(id=f"i-{n}", instance_type="t3.micro", state=protocol.INSTALL_FAILED,
                                      note="INSTALL.sh exited with status 3") for n in range(3)}
    actions = decide(World(rows(2), BucketView(NOW, machines=failed), []), policy(retries=2))
    assert actions.launch == {} and set(actions.fail_rows) == {"j0", "j1"}
    assert "INSTALL.sh failed on 3 machine(s) of type t3.micro" in actions.fail_rows["j0"]


def test_without_create_pending_rows_with_no_machine_are_reported_stuck():
    actions = decide(World(rows(2), BucketView(NOW), []), policy(may_launch=False))
    assert actions.launch == {} and actions.stuck == {"t3.micro": 2}


def test_a_worker_finishing_while_the_bucket_is_read_never_causes_a_launch(tmp_path):
    """Machine records are listed before rows: a worker seen finished has its rows' results in view."""
    import dataclasses
    import json

    from burst.node import claims
    from burst.node.bucket_view import RecordCache, read_bucket
    from burst.node.status_store import save_status
    from burst.storage.localdir import LocalDirStorage

    worker = WorkerRecord(id="i-1", instance_type="t3.micro", slots=1, state="working")

    class WorkerActsAfterTheFirstListing(LocalDirStorage):
        """As the worker on i-1 would, right after the first listing: claim j0, run it, save it, finish."""
        acted = False

        def list_objects(self, prefix=""):
            listing = super().list_objects(prefix)
            if not self.acted:
                self.acted = True
                won = claims.try_claim(self, "j0", "i-1", 0, None)
                save_status(self, JobStatus(job="j", tag="j0", state=protocol.DONE, instance_type="t3.micro",
                                            instance_id="i-1", attempt=won.claim.attempt, exit_code=0))
                finished = dataclasses.replace(worker, state="finished", rows=["j0#1"])
                self.write_text(protocol.worker_key("i-1"), json.dumps(dataclasses.asdict(finished)))
            return listing

    storage = WorkerActsAfterTheFirstListing((tmp_path / "bucket").as_uri())
    (tmp_path / "bucket").mkdir()
    storage.write_text(protocol.worker_key("i-1"), json.dumps(dataclasses.asdict(worker)))
    view = read_bucket(storage, RecordCache(), {"j0"})
    actions = decide(World(rows(1), view, [machine("i-1")]), policy(machines=1))
    assert view.row_state("j0") == protocol.DONE or view.workers["i-1"][0].state == "working"
    assert actions.launch == {}, "nothing to launch for a row that is done"


def test_a_released_row_with_no_retry_left_is_failed_not_relaunched_forever():
    released = HeldClaim(Claim(tag="j0", attempt=3, machine="i-1", slot=0, state=protocol.RELEASED,
                               reason="the worker could not run it: OSError: No space left on device"), "e", NOW)
    actions = decide(World(rows(1), BucketView(NOW, claims={"j0": released}), []), policy(retries=2))
    assert actions.launch == {} and "No space left on device" in actions.fail_rows["j0"]
    assert "no retry left (--retries 2)" in actions.fail_rows["j0"]


def ran(tag: str, command: str, kind: str = "t3.micro", attempt: int = 1) -> JobStatus:
    return JobStatus(job="j", tag=tag, state=protocol.DONE, instance_type=kind, command=command, attempt=attempt, exit_code=0)


def test_a_row_that_changed_since_its_attempt_ran_is_rerun_and_counts_as_pending():
    bucket = BucketView(NOW, statuses={"j0": ran("j0", "true"), "j1": ran("j1", "old", attempt=2),
                                       "j2": ran("j2", "true", kind="c5.large"), "j3": ran("j3", "")})
    actions = decide(World(rows(4), bucket, []), policy())
    assert [(r.tag, r.attempt, r.reason, r.running) for r in actions.rerun] == [
        ("j1", 2, "changed (command)", False), ("j2", 1, "changed (instance type)", False)], \
        "j0 is unchanged; j3's status recorded no command (an older burst): not judged"
    assert actions.launch == {"t3.micro": 2}, "machines for the rows to rerun, in the same round"


def test_a_running_attempt_of_a_changed_row_is_stopped_and_rerun():
    claim = Claim(tag="j0", attempt=1, machine="i-1", slot=0, instance_type="t3.micro", command="sleep 300")
    bucket = BucketView(NOW, claims={"j0": HeldClaim(claim, "e", NOW)})
    actions = decide(World(rows(1), bucket, [machine("i-1")]), policy())
    assert [(r.tag, r.attempt, r.reason, r.running) for r in actions.rerun] == [("j0", 1, "changed (command)", True)]
    assert actions.requeue == []


def test_retries_count_from_the_start_of_a_rows_current_run():
    """A row rerun as attempt 4 (changed, or --force) has its --retries afresh: it is not failed as out of retries."""
    released = Claim(tag="j0", attempt=3, machine="dispatcher", slot=-1, state=protocol.RELEASED,
                     reason="forced (--force)", retry_base=3)
    actions = decide(World(rows(1), BucketView(NOW, claims={"j0": HeldClaim(released, "e", NOW)}), []), policy(retries=0))
    assert actions.fail_rows == {} and actions.launch == {"t3.micro": 1}
    lost = HeldClaim(Claim(tag="j0", attempt=5, machine="i-gone", slot=0, retry_base=3), "e", NOW)
    actions = decide(World(rows(1), BucketView(NOW, claims={"j0": lost}), []), policy(retries=2))
    assert [(r.tag, r.final) for r in actions.requeue] == [("j0", False)], "attempt 5 is the 2nd of its run: one retry left"


def test_a_refused_login_is_its_type_s_verdict_no_machine_of_it_starts_again():
    refused = {"i-0": MachineRecord(id="i-0", instance_type="t3.micro", state=protocol.INSTALL_FAILED, fatal=True,
                                    note="i-0 refused user 'ubuntu' (publickey): this AMI (Amazon Linux 2023) logs in "
                                         "as ec2-user: pass --user ec2-user")}
    actions = decide(World(rows(2), BucketView(NOW, machines=refused), []), policy(retries=2))
    assert actions.launch == {} and set(actions.fail_rows) == {"j0", "j1"}, "one verdict, not --retries of them"
    assert actions.fail_rows["j0"] == (refused["i-0"].note + "; no more machines of type t3.micro are started")
    other = decide(World([Job(tag="c0", instance_type="c5.large", command="true", line=2)],
                         BucketView(NOW, machines=refused), []), policy())
    assert other.launch == {"c5.large": 1}, "other types still launch"


def test_machines_launched_in_the_second_the_run_started_count_as_this_run_s():
    """EC2's launch times have whole seconds; the run's start has milliseconds: the same second counts."""
    failed = {f"i-{n}": MachineRecord(id=f"i-{n}", instance_type="t3.micro", state=protocol.INSTALL_FAILED,
                                      launched="2026-11-23T19:40:01+00:00", note="exit 3") for n in range(3)}
    since = Policy(machines={"t3.micro": 3}, slots=1, heartbeat=1.0, retries=2, may_launch=True,
                   installs_since="2026-11-23T19:40:01.900+00:00")
    actions = decide(World(rows(1), BucketView(NOW, machines=failed), []), since)
    assert actions.launch == {} and set(actions.fail_rows) == {"j0"}
    earlier = Policy(machines={"t3.micro": 3}, slots=1, heartbeat=1.0, retries=2, may_launch=True,
                     installs_since="2026-11-23T19:40:02.000+00:00")
    assert decide(World(rows(1), BucketView(NOW, machines=failed), []), earlier).launch == {"t3.micro": 1}, \
        "a previous run's failures do not count"


def test_machines_whose_worker_never_reports_or_dies_count_like_failed_installs():
    """Not a full new pool every round, forever: after --retries such machines, the type's rows fail."""
    lost = {f"i-{n}": MachineRecord(id=f"i-{n}", instance_type="t3.micro", state=protocol.ENDED, lost_worker=True,
                                    note="its worker never reported (see logs/worker.log in its folder)") for n in range(2)}
    lost["i-2"] = MachineRecord(id="i-2", instance_type="t3.micro", state=protocol.INSTALL_FAILED, note="exit 3")
    actions = decide(World(rows(2), BucketView(NOW, machines=lost), []), policy(retries=2))
    assert actions.launch == {} and set(actions.fail_rows) == {"j0", "j1"}
    assert actions.fail_rows["j0"].startswith("3 machine(s) failed (1 at INSTALL.sh, 2 whose worker never reported "
                                              "or died) of type t3.micro; no more are started.")
    fewer = {k: v for k, v in lost.items() if k != "i-2"}
    assert decide(World(rows(2), BucketView(NOW, machines=fewer), []), policy(retries=2)).launch == {"t3.micro": 1}, \
        "two lost of --retries 2: one more machine may try"


def test_a_silent_worker_s_machine_is_ended_as_a_lost_worker():
    record = MachineRecord(id="i-s", instance_type="t3.micro", state=protocol.WORKING, updated="1970-01-01T00:00:00+00:00")
    (end,) = decide(World([], BucketView(NOW, machines={"i-s": record}), [machine("i-s")]), policy()).end
    assert end.lost_worker and end.reason.startswith("its worker never reported")
