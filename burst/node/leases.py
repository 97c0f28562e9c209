"""The worker's leases: a heartbeat thread renews every held claim and the machine's ``worker.json``.

An outage is not a death (``burst.control.bucket_watch`` is the dispatcher's side):
a renewal that fails is tried again at every beat for up to --save-patience, and a
claim of another machine that fell silent while the bucket was down is not taken
over: its silence counts only from the beat that found the bucket back.
Standard library and storage only (the worker runs on machines with Python 3.9).
"""

from __future__ import annotations

import threading
import time

from burst.node import claims
from burst.node.processes import stop_process_group
from burst.node.worker_basics import RowRun, log
from burst.storage import PreconditionFailed


class Leases:
    """The heartbeat half of ``burst.node.worker.Worker``: its attributes (``bucket_down``, ``watched_since``, ...) are the worker's."""

    def _heartbeats(self) -> None:
        """Each beat tries every lease once (a failure is tried again at the next beat) and writes worker.json."""
        while not self.stop.wait(self.config.heartbeat):
            with self.lock:
                runs = list(self.runs.values())
            answered = True
            for run in runs:
                with run.lock:
                    if not (run.finished or run.lost):
                        answered = self._renew(run) and answered
            answered = self.write_record("working", quick=True) and answered
            if not answered:
                self.bucket_down = True
            elif self.bucket_down:
                try:  # back: a claim silent until now was silenced by the outage too; its lease counts from here
                    self.watched_since, self.bucket_down = self.storage.clock(), False
                except Exception as error:  # noqa: BLE001 - still down: the next beat sees
                    log(f"reading the bucket's clock: {error}")

    def _renew(self, run: RowRun) -> bool:
        """One try at ``run``'s lease (under its lock); whether the bucket answered.

        A failed renewal is tried again at every beat for up to --save-patience: an outage
        is not a reason to drop a row (the reconcile judges no silence while the bucket is
        down). After that the attempt is given up (stopped; the reconcile reruns it once the
        bucket is back). A lease found taken over stops the attempt at once.
        """
        tag = run.held.claim.tag
        try:
            run.held = claims.renew(self.storage, run.held)
        except PreconditionFailed:
            run.lost = True
            log(f"{tag}: the lease was taken over; stopping this attempt")
            answered = True
        except Exception as error:  # the bucket is down (or refuses): tried again at the next beat
            first = run.failing_since is None
            run.failing_since = run.failing_since or time.monotonic()
            failing = time.monotonic() - run.failing_since
            if failing <= self.patience:
                if first:
                    log(f"renewing {tag} failed ({type(error).__name__}: {error}); trying again at every heartbeat "
                        f"for up to {self.patience:.0f} s (--save-patience)")
                return False
            run.lost = True
            log(f"{tag}: its lease could not be renewed for {failing:.0f} s (--save-patience); giving this attempt up")
            answered = False
        else:
            if run.failing_since is not None:
                log(f"{tag}: lease renewed again after {time.monotonic() - run.failing_since:.0f} s of failures")
            run.failing_since, run.written = None, time.time()
            return True
        threading.Thread(target=stop_process_group, args=(run.process,), daemon=True).start()
        return answered
