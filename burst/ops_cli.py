"""``python -m burst status|logs|terminate|cleanup JOB``: everything after the dispatch.

Machines are found by their tags at the provider, never from memory, so these
work from any shell, while the dispatcher runs or after it died.
"""

from __future__ import annotations

import argparse
import shutil
import sys

from burst.campaign import Campaign
from burst.campaign_record import load_record, record_path
from burst.console import console, report
from burst.errors import UserError
from burst.records import INTERRUPTED
from burst.status import status_json, status_table
from burst.status_store import load_status, save_status
from burst.storage import KeyNotFound


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m burst", description="Follow and manage a campaign by its job name.")
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", help="table of every tag: state, exit code, duration, instance")
    status.add_argument("job")
    status.add_argument("--json", action="store_true", help="print the status records as JSON")
    logs = sub.add_parser("logs", help="print a tag's install, stdout and stderr logs")
    logs.add_argument("job")
    logs.add_argument("tag")
    terminate = sub.add_parser("terminate", help="end every live machine of the job")
    terminate.add_argument("job")
    cleanup = sub.add_parser("cleanup", help="delete the job's bucket data and its local records")
    cleanup.add_argument("job")
    cleanup.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    return parser


def _campaign(job: str) -> Campaign:
    record = load_record(job)
    provider = record.provider()
    return Campaign(record, provider, record.storage(provider), report=report)


def cmd_status(job: str, as_json: bool) -> int:
    campaign = _campaign(job)
    statuses = campaign.poll()
    if as_json:
        print(status_json(campaign.record.tags, statuses))
    else:
        console.print(status_table(job, campaign.record.tags, statuses))
    return 0


def cmd_logs(job: str, tag: str) -> int:
    campaign = _campaign(job)
    campaign.record.job_of(tag)  # names the known tags when this one is wrong
    for name in ("install.log", "stdout.log", "stderr.log"):
        console.rule(f"{tag} {name}")
        try:
            sys.stdout.write(campaign.storage.read_text(f"{tag}/logs/{name}"))
        except KeyNotFound:
            live = [i for i in campaign.provider.list({"job": job, "tag": tag})]
            text = None
            if live:  # not saved yet: read it from the machine
                transport = campaign.provider.transport(live[0])
                try:
                    result = transport.run(f"cat {campaign.provider.node_dir(live[0])}/logs/{name}", check=False)
                    text = result.out if result.ok else None
                finally:
                    transport.close()
            sys.stdout.write(text if text is not None else f"(no {name} yet)\n")
        sys.stdout.flush()
    return 0


def cmd_terminate(job: str) -> int:
    campaign = _campaign(job)
    live = campaign.provider.list({"job": job})
    campaign.provider.terminate([i.id for i in live])
    for instance in live:
        status = load_status(campaign.storage, instance.tag)
        if status is not None and not status.terminal:
            status.state, status.note = INTERRUPTED, "terminated by `burst terminate`"
            save_status(campaign.storage, status)
    report(f"terminated {len(live)} machine(s) of job {job}")
    return 0


def cmd_cleanup(job: str, yes: bool) -> int:
    campaign = _campaign(job)
    live = campaign.provider.list({"job": job})
    if live:
        raise UserError(f"job {job} still has {len(live)} live machine(s): run `python -m burst terminate {job}` first.")
    keys = campaign.storage.list_keys()
    if not yes:
        if not sys.stdin.isatty():
            raise UserError(f"cleanup deletes {len(keys)} file(s) of {campaign.record.bucket_url}: confirm with --yes.")
        answer = input(f"Delete {len(keys)} file(s) of {campaign.record.bucket_url} and the records of job {job}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            report("nothing deleted")
            return 1
    campaign.storage.delete_keys(keys)
    campaign.provider.cleanup()
    record_path(job).unlink(missing_ok=True)
    report(f"deleted {len(keys)} file(s) and the records of job {job}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "status":
        return cmd_status(args.job, args.json)
    if args.command == "logs":
        return cmd_logs(args.job, args.tag)
    if args.command == "terminate":
        return cmd_terminate(args.job)
    return cmd_cleanup(args.job, args.yes)
