"""The worker's start on a machine: once only, and whatever happens, ``worker.exit`` says how it ended.

A worker that cannot even begin (node.json unreadable, the bucket's client not
made) logs why in logs/worker.log and exits with status 3; the dispatcher's
probe then finds it finished without a worker record, reads that log over SSH,
saves it to the bucket and records the reason (``burst.control.fleet``).
Standard library and storage only: the machine's entry script runs it.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

from burst import protocol
from burst.atomic import write_atomically
from burst.node.config import NodeConfig
from burst.node import claims
from burst.node.ending import terminate_self
from burst.node.worker import Worker
from burst.node.worker_basics import CANNOT_WORK, NODE_S3_ATTEMPTS, WORKER_AGENT, log
from burst.records import utc_now
from burst.retry import unfixable
from burst.storage import open_storage


def work(root: Path) -> int:
    """The worker's life on one machine, once: a second start (or a restart after a kill) exits at once."""
    with open(root / protocol.WORKER_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / protocol.WORKER_STARTED).exists():
            log("a worker already ran on this machine; not starting another")
            return 0
        write_atomically(root / protocol.WORKER_STARTED, utc_now() + "\n")
        try:
            config = NodeConfig.load(root)
            options = dict(config.storage_options())
            if config.bucket_url.startswith("s3://"):
                options["user_agent_extra"] = WORKER_AGENT
                options["max_attempts"] = NODE_S3_ATTEMPTS
            worker = Worker(root, config, open_storage(config.bucket_url, **options))
            code = worker.run()
            if worker.failure:
                code = cannot_work(worker)
        except Exception as error:  # before a Worker could record anything: the dispatcher reads this log
            log(f"this worker cannot work: {unfixable(error) or f'{type(error).__name__}: {error}'}")
            code = CANNOT_WORK
        write_atomically(root / protocol.WORKER_EXIT, f"{code}\n")  # before the lock is released
        return code


def cannot_work(worker: Worker) -> int:
    """Give the held rows back with the reason, record it, save the log, end the machine: within seconds.

    When the reason cannot be recorded (the bucket refuses this worker), the machine
    stays for the dispatcher, which reads this log over SSH, records why and ends it.
    """
    with worker.lock:
        runs = list(worker.runs.values())
    for run in runs:
        try:
            claims.release(worker.storage, run.held, f"the worker on {worker.config.instance_id} cannot work: {worker.failure}")
        except Exception as error:  # its lease runs out: the reconcile requeues it
            log(f"releasing {run.held.claim.tag} failed: {error}")
    written = worker.write_record("failed", note=worker.failure, quick=True)
    worker.save_log()
    if not written:
        log("the reason could not be recorded in the bucket: this machine stays for the dispatcher to read it")
        return CANNOT_WORK
    try:
        terminate_self(worker.config)
    except Exception as error:  # the reconcile ends it: its record says it failed
        log(f"could not end this machine: {error}")
    return CANNOT_WORK


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="save_results.py", description="The machine's worker.")
    parser.add_argument("step", choices=["work"], help="work: claim and run rows of this machine's type until none are left")
    parser.add_argument("--node-dir", type=Path, default=Path(__file__).resolve().parents[3],
                        help="the machine's folder (default: two levels above this file)")
    args = parser.parse_args(argv)
    return work(args.node_dir)
