"""An outage is not a death: the dispatcher's probe, written to the bucket at every round.

A worker whose heartbeats stopped while the bucket took writes is dead; one whose
heartbeats could not reach a bucket that was down is not. So each round, once the
bucket is read, the dispatcher writes one small record (``protocol.PROBE_KEY``), tried
twice at most (``Storage.quick``: botocore's ten tries would hide a minute of outage inside
the call; the round's reads get three for the same reason):

* the write fails: the round decides nothing (``BucketUnreachable``): the workers
  cannot renew their leases either, and their silence says nothing about them.
* it succeeds: the round counts as watched. A lease's age is the time watched since
  the lease's last write (``decide.World.silent_for``), where the time between two
  probes counts only when both succeeded, and then at most ``max_gap`` (half a lease):
  a longer gap (a round whose own requests retried through an outage) may hide an
  outage. So after an outage every worker has a whole lease to renew before it is
  judged, and a dead worker is still judged after a lease of watching.

A run starts watching at its first probe: a new run (``status``, or the same command
run again after an outage ended it) judges no silence before it has watched a lease.
"""

from __future__ import annotations

import json
import time

from burst import protocol
from burst.errors import BurstError, command_name
from burst.records import utc_now
from burst.retry import credentials_expired, unfixable
from burst.storage import Storage

PROBE_ATTEMPTS = 2  # a lone 5xx is a blip, not an outage
READ_ATTEMPTS = 3  # the round's reads (the fleet's): an outage fails the round within seconds, and the probe names it


class BucketUnreachable(BurstError):
    """The round's probe write failed: the bucket is down (or unreachable from here); nothing was decided."""

    def __init__(self, url: str, error: BaseException, down_for: float):
        self.url, self.error, self.down_for = url, error, down_for
        answer = getattr(error, "response", None)
        answer = answer.get("Error", {}) if isinstance(answer, dict) else {}
        detail = (f"{answer.get('Code')}: {answer.get('Message') or ''}".rstrip(": ") if answer.get("Code") else
                  f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".rstrip(": "))
        super().__init__(f"the bucket {url} is unreachable ({detail})")


class BucketWatch:
    """The probes of one dispatcher run; ``probe()`` once per round, after the bucket is read."""

    def __init__(self, storage: Storage, lease: float):
        self.storage = storage
        self.lease = lease
        self.max_gap = lease / 2
        self.watched: list[tuple[float, float]] = []  # (bucket time of a probe that succeeded, seconds watched by then)
        self.down_since: float | None = None  # time.monotonic() of the first failed probe of an outage under way
        self._failed = False  # the last probe failed: the gap up to the next one counts nothing
        self._probe_storage: Storage | None = None

    def probe(self) -> tuple[tuple[float, float], ...]:
        """Write the probe; this run's probes as ``World.watched`` wants them.

        Raises ``BucketUnreachable`` when the write fails, with how long the outage has
        lasted as this run saw it.
        """
        try:
            if self._probe_storage is None:
                self._probe_storage = self.storage.quick(PROBE_ATTEMPTS)
            self._probe_storage.write_text(protocol.PROBE_KEY, json.dumps({"probed": utc_now()}) + "\n")
            now = self._probe_storage.clock()  # its answer's Date (no request): the bucket's clock, as the listing's
        except Exception as error:
            if credentials_expired(error):
                raise  # no round passes until they are renewed: the entry point says how
            refused = unfixable(error)
            if refused:  # AccessDenied, NoSuchBucket, ...: no outage, and no wait can fix it
                raise BurstError(f"the bucket {self.storage.url} refuses the dispatcher's write of "
                                 f"{protocol.PROBE_KEY} ({refused}); no retry can fix that: check the bucket and "
                                 f"that your credentials allow what `{command_name()} permissions` prints") from error
            self._failed = True
            self.down_since = self.down_since or time.monotonic()
            raise BucketUnreachable(self.storage.url, error, time.monotonic() - self.down_since) from error
        if not self.watched:
            watched = 0.0
        else:
            last, watched = self.watched[-1]
            watched += 0.0 if self._failed else min(max(0.0, now - last), self.max_gap)
        self.watched.append((now, watched))
        while len(self.watched) > 2 and watched - self.watched[1][1] >= 2 * self.lease:
            self.watched.pop(0)  # older records were silent for two leases of watching: judged already
        self._failed, self.down_since = False, None
        return tuple(self.watched)

    def close(self) -> None:
        probe_storage, self._probe_storage = self._probe_storage, None
        close_quick(self.storage, probe_storage)


def close_quick(storage: Storage, quick: Storage | None) -> None:
    """Close what ``storage.quick()`` made (nothing when it was ``storage`` itself)."""
    if quick is not None and quick is not storage:
        close = getattr(quick, "close", None)
        if close is not None:
            close()
