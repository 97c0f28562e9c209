"""``burst list``; ``burst status|cost|logs|ssh|terminate|cleanup JOB``: everything after the dispatch.

Machines are found by their tags at the provider, never from memory, so these
work from any shell, while the dispatcher runs or after it died.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from burst import __version__, protocol
from burst.cli.arguments import Parser
from burst.cli.console import command_name, console, errors, report, working_on
from burst.cli.listing import campaigns, print_campaigns
from burst.cli.remote_access import STREAMS, follow, shell
from burst.cli.tables import exit_status, print_machines, print_status, status_json
from burst.concurrency import collector_paused
from burst.control.campaign import Campaign
from burst.control.campaign_record import load_record, record_path, timeline_path
from burst.control.decide import Actions, EndMachine
from burst.control.kept_records import checked_path, kept_path
from burst.control.ledger import cost_by_machine, cost_by_type, cost_line
from burst.errors import UserError
from burst.providers.base import kept_private
from burst.results.plot import plot_campaign
from burst.storage import KeyNotFound


def build_parser(prog: str = "burst") -> argparse.ArgumentParser:
    parser = Parser(prog=prog, description="Run a benchmark campaign on EC2 (or this machine), follow it, and get its results.",
                    epilog=f"`{prog} COMMAND --help` tells more of each command.")
    parser.add_argument("--version", action="version", version=f"burst {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in DELEGATED_HELP.items():  # parsed by their own modules (burst.cli.main); listed here for --help
        sub.add_parser(name, help=text, add_help=False)
    sub.add_parser("list", help="every campaign started here: where, rows, state, age")
    status = sub.add_parser("status", help="table of every row (state, exit code, attempt, machine, slot, heartbeat) and machine, or a summary when they are more than fit; reconciles first")
    status.add_argument("job", nargs="?", help="the job name (as given to `run`); none: list the campaigns")
    status.add_argument("--json", action="store_true", help="print the status records as JSON")
    status.add_argument("--cost", action="store_true", help="also print the cost per instance type and per machine")
    status.add_argument("--wide", action="store_true", help="every column, notes unabridged (wider than the terminal)")
    status.add_argument("--all", dest="every_row", action="store_true",
                        help="a line for every row and machine, even when they are more than fit the screen (then a summary is shown)")
    cost = sub.add_parser("cost", help="what the campaign cost so far: per instance type and per machine")
    cost.add_argument("job", help="the job name (as given to `run`)")
    logs = sub.add_parser("logs", help="print a row's install, stdout and stderr logs")
    logs.add_argument("job", help="the job name (as given to `run`)")
    logs.add_argument("tag", help="the row's tag (JOB0, JOB1, ...)")
    logs.add_argument("--attempt", type=int, help="which attempt (default: the last one)")
    logs.add_argument("-f", "--follow", action="store_true", help="follow the running row's output until it ends")
    logs.add_argument("--stream", choices=STREAMS, default="stdout", help="with -f: which log to follow (default stdout)")
    ssh = sub.add_parser("ssh", help="a shell on a row's machine (in its code folder while it runs); a sandbox shell locally")
    ssh.add_argument("job", help="the job name")
    ssh.add_argument("tag", help="the row's tag (JOB0, JOB1, ...)")
    ssh.add_argument("remote", nargs="*", metavar="COMMAND",
                     help="run this instead of a shell (one argument: a shell line; put -- before a command with options)")
    ssh.add_argument("--print", dest="print_only", action="store_true", help="only print the command")
    plot = sub.add_parser("plot", help="draw the campaign's timeline (machines, installs, every attempt) as a PNG")
    plot.add_argument("job", help="the job name (as given to `run`)")
    plot.add_argument("-o", "--output", type=Path, metavar="PNG", help="where to write it (default: JOB-timeline.png beside the campaign record, where `run --wait` draws it too)")
    terminate = sub.add_parser("terminate", help="end every live machine of the job")
    terminate.add_argument("job", help="the job name (as given to `run`)")
    cleanup = sub.add_parser("cleanup", help="delete the job's bucket data and its local records")
    cleanup.add_argument("job", help="the job name (as given to `run`)")
    cleanup.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    permissions = sub.add_parser("permissions", help="print the IAM policy (JSON) that running burst on EC2 needs, "
                                                     "for `aws iam put-user-policy`")
    permissions.add_argument("--node", metavar="JOB", help="print the policy of JOB's machines instead (for --instance-profile)")
    permissions.add_argument("--bucket", help="with --node: the job's --bucket, if it has one")
    return parser


DELEGATED_HELP = {
    "run": "start or resume a campaign: AMI JOB JOBFILE -c -d [--wait] (the dispatcher)",
    "download": "download a job's outputs and logs: JOB DIR [--merge] (get_s3_files)",
}


SKEW_SHOWN = 30.0  # seconds between this machine's clock and the bucket's that status mentions


def _note(message: str) -> None:
    """What the reconcile did goes to stderr, so that ``status --json`` stays pure JSON."""
    errors.print(message, markup=False, soft_wrap=True)


def _campaign(job: str, any_layout: bool = False) -> Campaign:
    """The campaign, refused when its bucket has another layout (``any_layout``: terminate and cleanup work on any)."""
    record = load_record(job)
    if not any_layout:
        record.check_layout()
    provider = record.provider()
    return Campaign(record, provider, record.storage(provider), report=_note)


@collector_paused()  # one command's records, built at once: burst.concurrency
def cmd_status(job: str, as_json: bool, with_cost: bool = False, wide: bool = False, every_row: bool = False) -> int:
    """Reconcile (requeue lost rows, end stray machines; never launch), then show every row and machine.

    Exits 0 when every row is done, 1 when any failed or was interrupted, 3 while rows are still to run.
    """
    campaign = _campaign(job)
    world, _ = campaign.reconcile(may_launch=False)
    campaign.keep_records()
    for message in world.bucket.unreadable.values():  # a record that rotted: named, never a traceback
        _note(message)
    if abs(world.bucket.skew) > SKEW_SHOWN:
        _note(f"this machine's clock is {abs(world.bucket.skew):.0f} s {'ahead of' if world.bucket.skew > 0 else 'behind'} "
              f"the bucket's; harmless (leases are measured on the bucket's clock), but times this machine "
              f"writes (setup phases, the plan) are off by as much: set the clock (NTP)")
    rows = campaign.rows(world)
    machines = campaign.machines(world)
    ledger = campaign.ledger(world, rows)
    tags = campaign.record.tags
    if as_json:
        print(status_json(job, tags, rows, machines))
        return exit_status(tags, rows)
    print_status(console, job, tags, rows, wide=wide, every_row=every_row,
                 types={j.tag: j.instance_type for j in campaign.record.jobs})
    print_machines(console, machines, wide=wide, every_row=every_row)
    if with_cost:
        _print_cost(ledger)
    report(cost_line(ledger))
    return exit_status(tags, rows)


def _print_cost(ledger) -> None:
    console.print(cost_by_type(ledger))
    console.print(cost_by_machine(ledger))


def cmd_cost(job: str) -> int:
    """The ledger alone: no reconcile, nothing changed."""
    campaign = _campaign(job)
    ledger = campaign.ledger()
    _print_cost(ledger)
    report(cost_line(ledger))
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


def attempts_of(campaign: Campaign, tag: str, world) -> dict[int, str]:
    """Every attempt the row has had, with the machine that ran it ("" when none did)."""
    found: dict[int, str] = {}
    for key in campaign.storage.list_keys(f"{tag}/attempts/"):
        number = key.split("/")[2] if key.count("/") >= 3 else ""
        if number.isdigit():
            found.setdefault(int(number), "")
    status = world.bucket.statuses.get(tag)
    if status is not None and status.attempt:
        found[status.attempt] = status.instance_id
    held = world.bucket.claims.get(tag)
    if held is not None and held.claim.attempt and held.claim.machine != "dispatcher":
        found[held.claim.attempt] = found.get(held.claim.attempt) or held.claim.machine
    for number, machine in found.items():
        if not machine:
            try:
                found[number] = json.loads(campaign.storage.read_text(protocol.attempt_status_key(tag, number))).get("instance_id", "")
            except (KeyNotFound, ValueError):
                pass
    return {n: m if m != "dispatcher" else "" for n, m in sorted(found.items())}


def cmd_logs(job: str, tag: str, attempt: int | None) -> int:
    campaign = _campaign(job)
    campaign.record.job_of(tag)  # names the known tags when this one is wrong
    world = campaign.fleet.observe()
    row = campaign.rows(world)[tag]
    known = attempts_of(campaign, tag, world)
    if attempt is not None and attempt not in known:
        have = (f"its attempts are {', '.join(map(str, known))}" if known else f"it has not started yet ({row.state})")
        raise UserError(f"{tag} has no attempt {attempt}: {have}. See them with `{command_name()} logs {job} {tag} --attempt N`.")
    if attempt is None:
        running = [n for n in known if row.state == protocol.RUNNING and n == row.attempt]
        attempt = running[0] if running else max(known, default=0)
    if not attempt:
        report(f"{tag} has not started yet ({row.state})")
        return 0
    machine = known[attempt]
    saved = campaign.storage.list_keys(protocol.MACHINE_LOGS_PREFIX) if machine else []
    sources = [("install.log", protocol.saved_machine_log(saved, machine, "install.log"), protocol.INSTALL_LOG),
               ("worker.log", protocol.saved_machine_log(saved, machine, "worker.log"), "logs/worker.log")] if machine else []
    sources += [(name, protocol.attempt_logs_prefix(tag, attempt) + name, f"runs/{tag}.{attempt}/logs/{name}")
                for name in ("stdout.log", "stderr.log")]
    for name, key, remote in sources:
        console.rule(f"{tag} attempt {attempt} {name} ({machine or 'no machine'})")
        text = _read_log(campaign, key, machine, remote)
        sys.stdout.write(text if text is not None else f"(no {name})\n")
        sys.stdout.flush()
    return 0


def cmd_terminate(job: str) -> int:
    """End every live machine of the job; their running rows are requeued by the next reconcile."""
    campaign = _campaign(job, any_layout=True)
    noun = "machine(s)"
    try:  # recorded as ended now: status, the ledger and the timeline end them here, not at their last heartbeat
        world = campaign.fleet.observe()
        live = world.live
        campaign.fleet.apply(world, Actions(end=[EndMachine(m.id, "terminated on request (`terminate`)") for m in live]))
    except UserError:
        raise
    except Exception:  # noqa: BLE001 - a bucket of another layout: end the machines all the same
        live = campaign.provider.list({"job": job})
        campaign.provider.terminate([i.id for i in live])
    finally:
        campaign.fleet.close()
    report(f"terminated {len(live)} {noun} of job {job}; its unfinished rows run again when the campaign "
           f"is resumed (the same `run` command with -c -d)" if live else f"job {job} has no live {noun}")
    return 0


def cmd_cleanup(job: str, yes: bool) -> int:
    campaign = _campaign(job, any_layout=True)
    live = campaign.provider.list({"job": job})
    if live:
        raise UserError(f"job {job} still has {len(live)} live machine(s): run `{command_name()} terminate {job}` first.")
    every_key = campaign.storage.list_keys()
    keys = [key for key in every_key if protocol.is_layout_key(key, job, set(campaign.record.tags))]
    others = [key for key in every_key if key not in set(keys)]
    if not yes:
        if not sys.stdin.isatty():
            raise UserError(f"cleanup deletes {len(keys)} file(s) of {campaign.record.bucket_url}: confirm with --yes.")
        answer = input(f"Delete {len(keys)} file(s) of {campaign.record.bucket_url} and the records of job {job}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            report("nothing deleted")
            return 1
    campaign.storage.delete_keys(keys)
    removed = [f"{len(keys)} file(s) of {campaign.record.bucket_url}"] + campaign.provider.cleanup()
    if others:  # not burst's: left as they are
        report(f"kept {len(others)} file(s) of {campaign.record.bucket_url} that burst did not write "
               f"({', '.join(others[:3])}{', ...' if len(others) > 3 else ''})")
    for path, what in ((record_path(job), "the campaign record"), (timeline_path(job), "the timeline picture"),
                       (kept_path(job), "the rows' statuses kept on this machine"),
                       (checked_path(job), "the etag of its campaign.json last read")):
        if path.exists():
            path.unlink()
            removed.append(f"{what} {path}")
    report(f"removed for job {job}:")
    for item in removed:
        report(f"  {item}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "job", None):
        working_on(args.job)
    if args.command == "list" or (args.command == "status" and args.job is None):
        print_campaigns(console, campaigns(), command_name())
        return 0
    with kept_private():  # ~/.burst 0700, every file written under it 0600
        return _command(args)


def _command(args) -> int:
    if args.command == "status":
        return cmd_status(args.job, args.json, args.cost, args.wide, args.every_row)
    if args.command == "cost":
        return cmd_cost(args.job)
    if args.command == "logs":
        if args.follow:
            return follow(_campaign(args.job), args.tag, args.stream)
        return cmd_logs(args.job, args.tag, args.attempt)
    if args.command == "ssh":
        remote = (args.remote[0] if len(args.remote) == 1 else shlex.join(args.remote)) if args.remote else None
        return shell(_campaign(args.job), args.tag, remote, args.print_only)
    if args.command == "plot":
        path = plot_campaign(_campaign(args.job), args.output or timeline_path(args.job))
        report(f"timeline of {args.job}: {path}")
        return 0
    if args.command == "terminate":
        return cmd_terminate(args.job)
    if args.command == "permissions":
        from burst.cli.permissions import print_permissions

        return print_permissions(args.node, args.bucket)
    return cmd_cleanup(args.job, args.yes)
