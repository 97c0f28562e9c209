"""The node protocol, in one place: states, bucket keys, node file names and probe words.

The dispatcher (reconcile, setup) and the worker on each machine share this
vocabulary. Standard library only: the worker imports it.

A *row* is one line of the job file, known by its tag. A *machine* is one
instance (or local sandbox), known by its instance id; it runs one worker that
claims rows of its instance type until none are left, then ends the machine.
"""

from __future__ import annotations

# -- row states (``state/ended/<tag>.json`` and the status table) -------------------
PENDING = "pending"  # nobody holds it: no claim yet, or its last attempt was released
RUNNING = "running"  # a worker holds its claim (derived from the claim; not written)
DONE = "done"
FAILED = "failed"
INTERRUPTED = "interrupted"  # an attempt lost its machine; final when no retry is left
UNKNOWN = "unknown"  # the record that decides the row is unreadable (derived, never written); --force reruns it
WRITTEN_STATES = frozenset({DONE, FAILED, INTERRUPTED})  # what a status.json may say
TERMINAL_STATES = WRITTEN_STATES | {UNKNOWN}
SPOT_INTERRUPTION = "spot interruption"  # the reason of a row a spot machine gave back

# -- claim states (``state/claims/<tag>.json``) ------------------------------------------
HELD = "held"  # a worker runs this attempt and renews the lease
RELEASED = "released"  # this attempt is over without a final result: the next attempt may claim it

# -- machine states (``state/machines/<id>.json``, written by the dispatcher) ------------
LAUNCHED = "launched"
INSTALLING = "installing"
READY = "ready"
WORKING = "working"  # its worker started
INSTALL_FAILED = "install-failed"
ENDED = "ended"  # ended by the reconcile; the record says why

# -- bucket keys ------------------------------------------------------------------
# What decides (claims, statuses, machine and worker records) lives under ``state/``,
# apart from the rows' logs and results, so the reconcile and the workers list only
# it: a listing costs the same at row 100 and row 100,000 whatever the rows upload.
# Layout 3 keeps the claims of rows not yet ended apart from the statuses of rows that
# ended: the reconcile lists ``state/claims/`` alone (the rows that run, and those that
# ended within SWEEP_AFTER_LEASES leases: it deletes their claims then), and learns of
# ends from the worker records; only a full read (``status``, a worker looking for
# rows, the dispatcher's first round) lists ``state/ended/`` too.
CAMPAIGN_KEY = "campaign.json"
LAYOUT = 3  # campaign.json's "layout": 3 = this one; 2 = state/rows/<tag>/{claim,status}.json; none = the first
CLAIMS_PREFIX = "state/claims/"  # <tag>.json (the claim), <tag>.released (the marker beside a released claim)
ENDED_PREFIX = "state/ended/"  # <tag>.json: the row's final status (its last attempt's)
MACHINES_PREFIX = "state/machines/"  # <id>.json (the dispatcher's), <folder>/worker.json (the worker's)
MACHINE_LOGS_PREFIX = "machines/"  # <folder>/install.log, <folder>/worker.log
LAYOUT_2_ROWS_PREFIX = "state/rows/"  # layout 2's <tag>/claim.json, status.json, released (read by download, cleanup)
# A machine's worker writes its own files under its *folder*: ``<role id>:<instance id>`` on
# EC2 (IAM's ``aws:userid``, which the node policy names: no machine writes another's), the
# instance id elsewhere (burst.node.identity). The dispatcher writes under the instance id.
NODE_FOLDER_VARIABLE = "${aws:userid}"
PROBE_KEY = "state/dispatcher.json"  # the dispatcher's probe, written each round (burst.control.bucket_watch)
# A claim whose row ended is deleted by the reconcile once the row's status is this many
# leases old, and a worker claims nothing from a listing older than a lease: so a worker
# whose listing showed a row free never claims it anew after another machine ran it.
SWEEP_AFTER_LEASES = 2
CLAIM_SUFFIX, RELEASED_SUFFIX, STATUS_SUFFIX = ".json", ".released", ".json"


def status_key(tag: str) -> str:
    return f"{ENDED_PREFIX}{tag}{STATUS_SUFFIX}"


def claim_key(tag: str) -> str:
    return f"{CLAIMS_PREFIX}{tag}{CLAIM_SUFFIX}"


def released_key(tag: str) -> str:
    """A marker beside a released claim, so that workers can find released rows from a listing alone."""
    return f"{CLAIMS_PREFIX}{tag}{RELEASED_SUFFIX}"


def row_record(key: str) -> tuple[str, str] | None:
    """``(tag, "claim" | "released" | "status")`` of a claim, marker or status key, else None."""
    if key.startswith(CLAIMS_PREFIX):
        name = key[len(CLAIMS_PREFIX):]
        if "/" in name:
            return None
        if name.endswith(CLAIM_SUFFIX):
            return name[:-len(CLAIM_SUFFIX)], "claim"
        if name.endswith(RELEASED_SUFFIX):
            return name[:-len(RELEASED_SUFFIX)], "released"
    elif key.startswith(ENDED_PREFIX):
        name = key[len(ENDED_PREFIX):]
        if "/" not in name and name.endswith(STATUS_SUFFIX):
            return name[:-len(STATUS_SUFFIX)], "status"
    return None


def attempt_prefix(tag: str, attempt: int) -> str:
    """Every attempt's logs and outputs stay, each under its own number; ``status.json`` names the current one."""
    return f"{tag}/attempts/{attempt}/"


def attempt_status_key(tag: str, attempt: int) -> str:
    """An earlier attempt's status, kept when a later attempt's replaced the row's status."""
    return f"{attempt_prefix(tag, attempt)}status.json"


def attempt_logs_prefix(tag: str, attempt: int) -> str:
    return f"{attempt_prefix(tag, attempt)}logs/"


def results_prefix(tag: str, attempt: int) -> str:
    return f"{attempt_prefix(tag, attempt)}results/"


def machine_key(instance_id: str) -> str:
    """The dispatcher's record of a machine: setup state, facts, why it was ended."""
    return f"{MACHINES_PREFIX}{instance_id}.json"


def worker_key(folder: str) -> str:
    """The worker's own record of its machine, renewed with every heartbeat (``folder``: see MACHINE_LOGS_PREFIX)."""
    return f"{MACHINES_PREFIX}{folder}/worker.json"


def instance_of(folder: str) -> str:
    """The instance id of a machine's folder: ``AROA...:i-0abc`` -> ``i-0abc``; ``i-0abc`` -> ``i-0abc``."""
    return folder.rpartition(":")[2]


def machine_record(key: str) -> tuple[str, str] | None:
    """``(instance id, "machine" | "worker")`` of a key under ``MACHINES_PREFIX``, else None."""
    if not key.startswith(MACHINES_PREFIX):
        return None
    parts = key[len(MACHINES_PREFIX):].split("/")
    if len(parts) == 1 and parts[0].endswith(".json"):
        return parts[0][:-len(".json")], "machine"
    if len(parts) == 2 and parts[1] == "worker.json":
        return instance_of(parts[0]), "worker"
    return None


def install_log_key(folder: str) -> str:
    return f"{MACHINE_LOGS_PREFIX}{folder}/install.log"


def worker_log_key(folder: str) -> str:
    return f"{MACHINE_LOGS_PREFIX}{folder}/worker.log"


def saved_machine_log(keys: list[str], instance_id: str, name: str) -> str:
    """The key of a machine's saved ``name`` (install.log, worker.log) among ``keys`` (a listing of
    MACHINE_LOGS_PREFIX): the one its worker wrote under its folder if any, else the dispatcher's."""
    for key in keys:
        folder, _, file = key[len(MACHINE_LOGS_PREFIX):].partition("/")
        if key.startswith(MACHINE_LOGS_PREFIX) and file == name and folder != instance_id and instance_of(folder) == instance_id:
            return key
    return f"{MACHINE_LOGS_PREFIX}{instance_id}/{name}"


# -- repetitions (``--repeat K``) --------------------------------------------------
# Each repetition of a row is a unit of its own, tagged ``<tag>.r<k>`` (k = 1..K):
# its own claim, status and attempts, so the claim protocol stays exactly-once per
# unit and the repetitions spread over the machines like any rows. A job name has
# no dot, so the suffix is never part of a row's own tag. Without --repeat (K = 1)
# tags have no suffix and every row is repetition 1.
REPEAT_MARK = ".r"


def unit_tag(tag: str, repeat: int, repeats: int) -> str:
    return tag if repeats <= 1 else f"{tag}{REPEAT_MARK}{repeat}"


def split_unit(tag: str) -> tuple[str, int]:
    """A unit's row tag and repetition number: ``demo3.r2`` -> (``demo3``, 2); ``demo3`` -> (``demo3``, 1)."""
    if REPEAT_MARK not in tag:  # most tags: decided without splitting (100,000 statuses each ask)
        return tag, 1
    row, mark, number = tag.rpartition(REPEAT_MARK)
    if mark and row and number.isdigit() and "." not in row:
        return row, int(number)
    return tag, 1


def is_layout_key(key: str, job: str, tags: set[str]) -> bool:
    """Whether burst's layout names ``key`` for the campaign ``job`` (its row tags, their repetitions, and
    ``JOB<n>`` of rows since removed): ``campaign.json``, ``state/machines/...``, ``state/claims/<tag>...``,
    ``state/ended/<tag>.json``, ``machines/...``, ``<tag>/...`` (and the earlier layouts' records).
    ``cleanup`` deletes only those."""
    if key in (CAMPAIGN_KEY, PROBE_KEY) or key.startswith((MACHINE_LOGS_PREFIX, MACHINES_PREFIX)):
        return True
    record = row_record(key)
    if key.startswith((CLAIMS_PREFIX, ENDED_PREFIX)) and record is None:
        return False
    if record is None and key.startswith(LAYOUT_2_ROWS_PREFIX):  # layout 2: state/rows/<tag>/<name>
        parts = key[len(LAYOUT_2_ROWS_PREFIX):].split("/")
        if len(parts) != 2:
            return False
        record = (parts[0], parts[1])
    tag, _ = split_unit(record[0] if record else key.split("/", 1)[0])
    return (record is not None or "/" in key) and (tag in tags or (tag.startswith(job) and tag[len(job):].isdigit()))


# -- files in a machine's folder on its node (``~/burst/<job>/<instance id>/``) ----
BUNDLE = "bundle.tar.gz"  # agent, code, INSTALL.sh and scripts: one upload per machine
NODE_CONFIG = "node.json"
SETUP_SCRIPT = "setup.sh"
WORKER_SCRIPT = "worker.sh"
INSTALL_STARTED = "install.started"
INSTALL_EXIT = "install.exit"
READY_FILE = "READY"
WORKER_STARTED = "worker.started"  # written by the worker itself, under its lock
WORKER_LOCK = "worker.lock"  # held by the live worker (flock)
WORKER_EXIT = "worker.exit"
INSTALL_LOG = "logs/install.log"
NODE_PYTHON = "python.path"  # the interpreter (python3 >= 3.9) the bootstrap found or installed for the worker

# -- what the probe answers (first word of its first line) -----------------------
P_NEW = "NEW"  # nothing there yet: copy the bundle and start setup
P_INSTALLING = "INSTALLING"
P_FAILED = "FAILED"  # followed by INSTALL.sh's exit status, then the log's tail
P_READY = "READY"  # installed; no worker started yet
P_WORKING = "WORKING"  # the worker runs
P_FINISHED = "FINISHED"  # the worker ended by itself
P_DEAD = "DEAD"  # the worker started and is gone without finishing (killed)

# every process of a local sandbox carries BURST_INSTANCE_ID=<id>, so ending it finds them all
INSTANCE_MARKER = "BURST_INSTANCE_ID"

TAIL_LINES = 20  # what a message shows of a log


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
