"""The worker: one long-lived process per machine that claims rows of its type until none are left.

Started once INSTALL.sh succeeded (``save_results.py work``). Each of its K slots
claims a row, runs its command in a fresh copy of the code folder (pinned to the
slot's CPUs when K > 1), saves outputs and logs, verifies every upload, writes
the row's final status, and claims the next. A heartbeat thread renews every held
lease; a lease found taken over stops its row. When no slot finds work, the worker
records that it finished and ends its machine.

Every storage write retries with backoff for minutes (``--save-patience``): a
transient fault never kills the worker. Standard library (+ boto3 on EC2) only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from burst import protocol
from burst.node import bench, claims, spot_notice
from burst.node.bucket_view import HeldClaim, RecordCache, campaign_rows, read_rows_worth_a_look
from burst.node.candidates import from_random_start, in_ring_order, losses_before_listing
from burst.node.config import NodeConfig, lease_seconds, provenance
from burst.node.ending import terminate_self
from burst.node.identity import machine_folder
from burst.node.leases import Leases
from burst.node.outputs import failure_note, find_outputs, prepare_results
from burst.node.processes import stop_process_group
from burst.node.status_store import save_status
from burst.node.worker_basics import CANNOT_WORK, RowRun, _retry_storage, log
from burst.records import JobStatus, WorkerRecord, iso_utc, row_cost, seconds_since, utc_now
from burst.retry import retry_call, unfixable
from burst.storage import PreconditionFailed, Storage

class Worker(Leases):
    def __init__(self, root: Path, config: NodeConfig, storage: Storage):
        self.root = root
        self.config = config
        self.storage = storage
        self.bench = bench.Bench(config)  # whole cores per slot, the machine's calibration
        self.slots = self.bench.slots
        self.patience = config.save_patience
        self.cache = RecordCache()
        self.runs: dict[str, RowRun] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.ran: list[str] = []
        self.keep_machine = False
        self.interruption: dict | None = None  # the spot interruption notice, once one came
        self.started = utc_now()
        self.folder = machine_folder(config, log)  # where its own files go: no other machine's (burst.node.identity)
        self.campaign_etag = ""
        self.failure = ""  # why this worker cannot work (an error no retry fixes): it stops at once
        # an outage is not a death: a claim silent while the bucket was down is not taken over (burst.control.bucket_watch)
        self.bucket_down = False  # a heartbeat (or a listing) found the bucket not answering, and none since found it back
        self.watched_since = 0.0  # the bucket's time when a heartbeat last found it back: silences count from there
        self.record_failing = False  # the last write of worker.json failed (said once, and once when one passes again)
        try:
            self.rows = self._rows_of_my_type()
        except Exception as error:  # retry_call gave up at once, or --save-patience ran out: run() says why
            self.rows = {}
            self.fail(error)
        self.queue: list[tuple[str, HeldClaim | None]] = []
        self.queue_lock = threading.Lock()
        self.listed_at = float("-inf")  # time.monotonic() when the listing behind ``queue`` began
        self.listing_took = 0.0  # seconds that listing took

    def _patiently(self, function, what: str, seconds: float | None = None):
        return _retry_storage(function, what, seconds or self.patience)

    # -- what there is to do ---------------------------------------------------
    def _rows_of_my_type(self) -> dict[str, str]:
        """tag -> command, for this machine's instance type, from ``campaign.json`` (and its etag, kept).

        Read again whenever a listing shows ``campaign.json`` changed: a dispatcher run
        again with changed rows releases them, and they must run as the file says now.
        """
        self.rows_read = time.time()

        def read() -> tuple[list[dict[str, str]], str]:  # unreadable: retried, as the dispatcher writes it again
            text, etag = self.storage.read_versioned(protocol.CAMPAIGN_KEY)
            return campaign_rows(text), etag

        jobs, self.campaign_etag = self._patiently(read, "reading campaign.json")
        return {row["tag"]: row["command"] for row in jobs if row["instance_type"] == self.config.instance_type}

    def _claim_next(self, slot: int) -> RowRun | None:
        """Claim a pending row, or take over one whose lease expired; None when nothing is left.

        Candidates come from one listing, shared by the slots, in the order of
        ``burst.node.candidates`` (which says when to list again). Nothing is claimed
        from a listing older than a lease: the reconcile deletes an ended row's claim
        once its status is ``protocol.SWEEP_AFTER_LEASES`` leases old, and an older
        listing could show such a row free. (A listing that itself takes half a lease
        is not repeated: each row it shows free is checked for a status before it is claimed.)
        """
        lease = lease_seconds(self.config.heartbeat)
        while True:
            losses, stale_after = 0, losses_before_listing(len(self.rows))
            while losses < stale_after:
                with self.queue_lock:
                    stale = time.monotonic() - self.listed_at > lease
                    if not self.queue or (stale and self.listing_took < lease / 2):
                        break
                    if losses:
                        self.queue = from_random_start(self.queue)
                    tag, held = self.queue.pop()
                if held is not None and held.claim.state == protocol.RELEASED and held.claim.tries == 0 \
                        and time.time() - seconds_since(held.claim.heartbeat) > self.rows_read:
                    self.rows = self._rows_of_my_type()  # rerun since we read the rows (it changed): as it is now
                command = self.rows.get(tag)
                if command is None:
                    continue  # no longer a row of this type: the campaign changed since the listing
                won = self._patiently(lambda: claims.try_claim(self.storage, tag, self.config.instance_id, slot, held,
                                                               self.config.instance_type, command, unless_ended=stale),
                                      f"claiming {tag}")
                if won is not None:
                    return RowRun(won, command)
                losses += 1
            with self.queue_lock:  # not self.lock: the heartbeats must go on while this lists
                self.queue = self._candidates()
                if not self.queue:
                    return None

    def _candidates(self) -> list[tuple[str, HeldClaim | None]]:
        lease = lease_seconds(self.config.heartbeat)

        def retrying(error, delay):
            self.bucket_down = True  # no silent claim is taken over until a heartbeat finds the bucket back
            log(f"listing the bucket: {error}; retrying in {delay:.1f} s")

        def listing():
            self.listed_at = time.monotonic()
            found = read_rows_worth_a_look(self.storage, self.cache, set(self.rows), lease)
            self.listing_took = time.monotonic() - self.listed_at
            return found

        def look():  # a bucket that cannot be listed is down, not empty
            return retry_call(listing, seconds=self.patience, on_retry=retrying)

        view, free = look()
        if view.campaign_etag and view.campaign_etag != self.campaign_etag:
            log("campaign.json changed: reading this type's rows again")
            self.rows = self._rows_of_my_type()
            view, free = look()
        found: list[tuple[str, HeldClaim | None]] = [(tag, None) for tag in free]
        for tag, held in view.claims.items():
            state = view.row_state(tag)
            if state == protocol.PENDING and held.claim.tries <= self.config.retries:
                found.append((tag, held))  # released, with a retry left (else the reconcile ends it)
            elif (state == protocol.RUNNING and held is not None and not self.bucket_down
                  and view.now - max(held.modified, self.watched_since) > lease
                  and held.claim.tries <= self.config.retries and held.claim.machine != self.config.instance_id):
                found.append((tag, held))  # its machine stopped renewing while the bucket was up: the next attempt is ours
        return from_random_start(in_ring_order(found))

    # -- one row -----------------------------------------------------------------
    def _environment(self, run: RowRun, slot: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "TAG": run.held.claim.tag, "JOB": self.config.job, "INSTANCE_ID": self.config.instance_id,
            "INSTANCE_TYPE": self.config.instance_type, "BURST_PROVIDER": self.config.provider,
            "ATTEMPT": str(run.held.claim.attempt), "SLOT": str(slot), "BURST_NODE_DIR": str(self.root),
            "REPEAT": str(protocol.split_unit(run.held.claim.tag)[1]),
        })
        return env

    def _run_row(self, slot: int, cpus: list[int], run: RowRun) -> None:
        claim = run.held.claim
        with self.lock:
            self.runs[claim.tag] = run
        folder = self.root / "runs" / f"{claim.tag}.{claim.attempt}"
        shutil.rmtree(folder, ignore_errors=True)
        code = folder / "code"
        shutil.copytree(self.root / "code", code, symlinks=True)
        prepared = prepare_results(code, self.config.results)  # results/ exists, empty, when the command starts
        logs = folder / "logs"
        logs.mkdir()
        started = time.time()
        with open(logs / "stdout.log", "wb") as out, open(logs / "stderr.log", "wb") as err:
            with run.lock:
                run.interrupted = run.interrupted or self.interruption is not None
                if not (run.lost or run.interrupted):
                    run.process = subprocess.Popen(
                        ["bash", "-c", run.command], cwd=code, env=self._environment(run, slot),
                        stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
            exit_code = run.process.wait() if run.process else -signal.SIGTERM
        ended = time.time()
        seconds = round(ended - started, 3)
        if exit_code < 0:
            exit_code = 128 - exit_code  # killed by a signal, as bash reports it
        status = JobStatus(
            job=self.config.job, tag=claim.tag, state=protocol.FAILED, instance_type=self.config.instance_type,
            command=run.command, instance_id=self.config.instance_id, attempt=claim.attempt, slot=slot, cpus=cpus,
            exit_code=exit_code, started=iso_utc(started), ended=iso_utc(ended), seconds=seconds,
            provenance=provenance(), instance=dict(self.config.facts), warnings=prepared, lifecycle=self.config.lifecycle,
            price_per_hour=self.config.price_per_hour, cost_usd=row_cost(seconds, self.config.price_per_hour, self.slots),
            **self.bench.row_facts(claim.tag, slot))
        try:
            self._save(run, status, code, logs)
        finally:
            with self.lock:
                self.runs.pop(claim.tag, None)
                self.ran.append(f"{claim.tag}#{claim.attempt}")
            if not self.keep_machine:
                shutil.rmtree(folder, ignore_errors=True)

    def _save(self, run: RowRun, status: JobStatus, code: Path, logs: Path) -> None:
        claim = run.held.claim
        uploads = {f"{protocol.attempt_logs_prefix(claim.tag, claim.attempt)}{p.name}": p for p in sorted(logs.iterdir())}
        if run.lost:
            # another machine runs the row now: keep this attempt's logs, claim nothing
            for key, path in uploads.items():
                self._upload(key, path, seconds=60)
            return
        outputs, warnings = find_outputs(code, self.config.results)
        uploads.update({f"{protocol.results_prefix(claim.tag, claim.attempt)}{name}": path for name, path in outputs.items()})
        patience = 60 if run.interrupted else None  # AWS ends the machine two minutes after its notice
        failures = [f"{key}: {error}" for key, path in uploads.items() if (error := self._upload(key, path, patience))]
        status.warnings = status.warnings + warnings
        if run.interrupted:
            self._give_back(run, status, failures)
            return
        if failures:
            self.keep_machine = True
            status.note = (f"upload failed, so the machine was left running to keep the outputs (collect them from "
                           f"{logs.parent}, then `python -m burst terminate {self.config.job}`): " + "; ".join(failures))
        elif status.exit_code == 0:
            status.state = protocol.DONE
        else:
            status.note = failure_note(status.exit_code, (logs / "stderr.log").read_text(errors="replace"), code)
        retry = (status.state == protocol.FAILED and not failures and self.config.retry_failed
                 and claim.tries <= self.config.retries)
        with run.lock:
            run.finished = True
            # Still ours? A taken-over attempt writes no status. Nobody may take a claim over
            # before its lease has passed since its last write, so a recent write answers that
            # without asking the bucket (half a lease leaves room for clocks that disagree).
            if run.lost or time.time() - run.written > lease_seconds(self.config.heartbeat) / 2:
                try:
                    run.held = self._patiently(lambda: claims.renew(self.storage, run.held), f"renewing {claim.tag}")
                except PreconditionFailed:
                    log(f"{claim.tag} attempt {claim.attempt} was taken over; its status is not written")
                    return
            if retry:
                status.note += f"; attempt {claim.attempt + 1} follows (--retry-failed)"
            self._patiently(lambda: save_status(self.storage, status), f"writing the status of {claim.tag}")
            if retry:
                self._patiently(lambda: claims.release(self.storage, run.held, status.note), f"releasing {claim.tag}")

    def _give_back(self, run: RowRun, status: JobStatus, failures: list[str]) -> None:
        """A spot interruption: this attempt ends ``interrupted`` (never the row's failure) and its claim is released."""
        claim = run.held.claim
        status.state = protocol.INTERRUPTED
        when = (self.interruption or {}).get("time")
        status.note = protocol.SPOT_INTERRUPTION + (f" (AWS ends the machine at {when})" if when else "")
        if failures:
            status.note += "; not saved: " + "; ".join(failures)
        with run.lock:
            run.finished = True
            self._patiently(lambda: save_status(self.storage, status), f"writing the status of {claim.tag}", seconds=60)
            self._patiently(lambda: claims.release(self.storage, run.held, protocol.SPOT_INTERRUPTION),
                            f"releasing {claim.tag}", seconds=60)
        log(f"{claim.tag} attempt {claim.attempt}: given back ({protocol.SPOT_INTERRUPTION})")

    def _on_interruption(self, notice: dict) -> None:
        """Stop claiming, stop every running row (TERM, then KILL); each slot then saves and gives its row back."""
        log(f"spot interruption notice: {notice}; giving the rows back")
        with self.lock:
            self.interruption = notice
            runs = list(self.runs.values())
        self.stop.set()
        for run in runs:
            with run.lock:
                run.interrupted = True
                process = run.process
            threading.Thread(target=stop_process_group, args=(process,), daemon=True).start()

    def _upload(self, key: str, path: Path, seconds: float | None = None) -> str | None:
        """None once verified, else the last error."""
        try:
            retry_call(lambda: self.storage.upload_file(path, key), seconds=seconds or self.patience,
                       on_retry=lambda error, delay: log(f"uploading {key}: {error}; retrying in {delay:.1f} s"))
            return None
        except Exception as error:  # reported in the status; the machine keeps the file
            return f"{type(error).__name__}: {error}"

    def save_log(self) -> None:
        """This worker's log into the bucket (``machines/<folder>/worker.log``): ``burst logs`` and status show it."""
        worker_log = self.root / "logs" / "worker.log"
        if worker_log.is_file():
            self._upload(protocol.worker_log_key(self.folder), worker_log, seconds=30)

    def write_record(self, state: str, note: str = "", quick: bool = False) -> bool:
        with self.lock:
            record = WorkerRecord(id=self.config.instance_id, instance_type=self.config.instance_type, slots=self.slots,
                                  state=state, started=self.started, rows=list(self.ran),
                                  running=[f"{t}#{r.held.claim.attempt}" for t, r in self.runs.items()],
                                  keep_machine=self.keep_machine, note=note, **self.bench.record_facts())
        text = json.dumps(record.__dict__, ensure_ascii=False) + "\n"
        key = protocol.worker_key(self.folder)
        try:  # quick: one try (the next beat writes it again)
            if quick:
                self.storage.write_text(key, text)
            else:
                self._patiently(lambda: self.storage.write_text(key, text), "writing the worker record")
        except Exception as error:  # advisory: the leases are what protect the rows
            if not self.record_failing:  # once, not at every beat of an outage
                log(f"writing the worker record failed: {error}; it is written again at every heartbeat")
            self.record_failing = True
            return False
        if self.record_failing:
            log("the worker record is written again")
        self.record_failing = False
        return True

    # -- the whole life ----------------------------------------------------------
    def fail(self, error: BaseException) -> None:
        """Stop: ``error`` is one no retry fixes (or the bucket stayed unreachable for --save-patience)."""
        reason = unfixable(error) or f"{type(error).__name__}: {error}"
        log(f"this worker cannot work: {reason}")
        self.failure = self.failure or reason
        self.stop.set()

    def _slot(self, slot: int) -> None:
        try:
            self._slot_rows(slot)
        except Exception as error:  # out of a claim or a listing: what retry_call would not or could not fix
            self.fail(error)

    def _slot_rows(self, slot: int) -> None:
        cpus = self.bench.pin(slot)  # this thread; the commands it starts inherit it
        while not self.stop.is_set():
            run = self._claim_next(slot)
            if run is None:
                return
            try:
                self._run_row(slot, cpus, run)
            except Exception as error:  # e.g. no disk left for the row's folder: give the attempt back
                reason = f"the worker on {self.config.instance_id} could not run it: {type(error).__name__}: {error}"
                log(f"{run.held.claim.tag}: {reason}")
                with self.lock:
                    self.runs.pop(run.held.claim.tag, None)
                with run.lock:
                    run.finished = True
                    try:
                        claims.release(self.storage, run.held, reason)
                    except Exception as again:  # the lease runs out and the reconcile requeues it
                        log(f"releasing {run.held.claim.tag} failed too: {again}")
                if unfixable(error):
                    raise

    def run(self) -> int:
        install_log = self.root / protocol.INSTALL_LOG
        if install_log.is_file():
            self._upload(protocol.install_log_key(self.folder), install_log)
        if self.failure:
            return CANNOT_WORK  # burst.node.entry.cannot_work says why and ends the machine
        self.bench.calibrate(log)  # before any claim, so the slots' processes measure alone; its record says the result
        self.write_record("working")
        beats = threading.Thread(target=self._heartbeats, name="heartbeats", daemon=True)
        beats.start()
        if self.config.provider == "ec2" and self.config.lifecycle == "spot":
            spot_notice.watch(self.stop, self._on_interruption, log)
        threads = [threading.Thread(target=self._slot, args=(s,), name=f"slot-{s}") for s in range(self.slots)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.stop.set()
        beats.join()
        if self.failure:
            return CANNOT_WORK  # burst.node.entry.cannot_work says why and ends the machine
        if self.interruption is not None:
            self.write_record("interrupted", note=f"spot interruption notice: {self.interruption}")
        elif self.keep_machine:
            self.write_record("finished", note="kept running: an upload could not be verified")
            return 1
        else:
            self.write_record("finished")
        self.save_log()
        try:
            terminate_self(self.config)
        except Exception as error:  # the reconcile ends it; say why here
            log(f"could not end this machine: {error}")
            self.write_record("finished", note=f"could not end its machine: {type(error).__name__}: {error}")
            return 1
        return 0
