"""``python -m burst status|logs|terminate|cleanup JOB``: everything after the dispatch.

Machines are found by their tags at the provider, never from memory, so these
work from any shell, while the dispatcher runs or after it died.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from burst.campaign import Campaign
from burst.campaign_record import load_record, record_path
from burst.console import console, errors, report
from burst.errors import UserError
from burst import protocol
from burst.status import machines_table, status_json, status_table
from burst.storage import KeyNotFound


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m burst", description="Follow and manage a campaign by its job name.")
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", help="table of every row (state, exit code, attempt, machine, slot, heartbeat) and machine; reconciles first")
    status.add_argument("job")
    status.add_argument("--json", action="store_true", help="print the status records as JSON")
    logs = sub.add_parser("logs", help="print a row's install, stdout and stderr logs")
    logs.add_argument("job")
    logs.add_argument("tag")
    logs.add_argument("--attempt", type=int, help="which attempt (default: the last one)")
    terminate = sub.add_parser("terminate", help="end every live machine of the job")
    terminate.add_argument("job")
    cleanup = sub.add_parser("cleanup", help="delete the job's bucket data and its local records")
    cleanup.add_argument("job")
    cleanup.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    return parser


def _note(message: str) -> None:
    """What the reconcile did goes to stderr, so that ``status --json`` stays pure JSON."""
    errors.print(message, markup=False, soft_wrap=True)


def _campaign(job: str) -> Campaign:
    record = load_record(job)
    provider = record.provider()
    return Campaign(record, provider, record.storage(provider), report=_note)


def cmd_status(job: str, as_json: bool) -> int:
    """Reconcile (requeue lost rows, end stray machines; never launch), then show every row and machine."""
    campaign = _campaign(job)
    world, _ = campaign.reconcile(may_launch=False)
    rows = campaign.rows(world)
    machines = campaign.machines(world)
    if as_json:
        print(status_json(job, campaign.record.tags, rows, machines))
    else:
        console.print(status_table(job, campaign.record.tags, rows))
        console.print(machines_table(machines))
    return 0


def _read_log(campaign: Campaign, key: str, machine: str, remote: str) -> str | None:
    """A log from the bucket, else (not saved yet) from its live machine."""
    try:
        return campaign.storage.read_text(key)
    except KeyNotFound:
        pass
    live = [i for i in campaign.provider.list({"job": campaign.record.job}) if i.id == machine]
    if not live:
        return None
    transport = campaign.provider.transport(live[0])
    try:
        result = transport.run(f"cat {shlex.quote(campaign.provider.node_dir(live[0]) + '/' + remote)}", check=False)
        return result.out if result.ok else None
    finally:
        transport.close()


def cmd_logs(job: str, tag: str, attempt: int | None) -> int:
    campaign = _campaign(job)
    campaign.record.job_of(tag)  # names the known tags when this one is wrong
    world = campaign.fleet.observe()
    row = campaign.rows(world)[tag]
    held = world.bucket.claims.get(tag)
    attempt = attempt or (held.claim.attempt if held else row.attempt)
    machine = held.claim.machine if held and held.claim.attempt == attempt else row.instance_id
    if not attempt:
        report(f"{tag} has not started yet ({row.state})")
        return 0
    sources = [("install.log", protocol.install_log_key(machine), protocol.INSTALL_LOG)]
    sources += [(name, protocol.attempt_logs_prefix(tag, attempt) + name, f"runs/{tag}.{attempt}/logs/{name}")
                for name in ("stdout.log", "stderr.log")]
    for name, key, remote in sources:
        console.rule(f"{tag} attempt {attempt} {name} ({machine})")
        text = _read_log(campaign, key, machine, remote)
        sys.stdout.write(text if text is not None else f"(no {name})\n")
        sys.stdout.flush()
    return 0


def cmd_terminate(job: str) -> int:
    """End every live machine of the job; their running rows are requeued by the next reconcile."""
    campaign = _campaign(job)
    live = campaign.provider.list({"job": job})
    campaign.provider.terminate([i.id for i in live])
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
    removed = [f"{len(keys)} file(s) of {campaign.record.bucket_url}"] + campaign.provider.cleanup()
    path = record_path(job)
    if path.exists():
        path.unlink()
        removed.append(f"the campaign record {path}")
    report(f"removed for job {job}:")
    for item in removed:
        report(f"  {item}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "status":
        return cmd_status(args.job, args.json)
    if args.command == "logs":
        return cmd_logs(args.job, args.tag, args.attempt)
    if args.command == "terminate":
        return cmd_terminate(args.job)
    return cmd_cleanup(args.job, args.yes)
