"""``dispatcher.py AMI JOB JOBFILE [-c] [-d] [--wait]``: create machines, start commands."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import Counter
from pathlib import Path

from burst.cli import preflight, validate
from burst.cli.arguments import Parser, non_negative_int, positive_float, positive_int, slots
from burst.cli.console import command_name, console, report, working_on
from burst.cli.failures import aws_failure, is_aws_error
from burst.cli.progress import LiveProgress, summary
from burst.cli.run_options import CONFIG_NAME, RunOptions, resolve, user_config_path
from burst.cli.tables import campaign_succeeded, count_states, print_status
from burst.control.campaign import Campaign
from burst.control.campaign_record import (
    CampaignRecord,
    PoolOptions,
    dispatcher_lock,
    load_record,
    merge_rows,
    record_path,
    timeline_path,
)
from burst.control.cost_plan import (
    SPOT_MARKETS,
    CampaignPlan,
    confirm,
    make_plan,
    plan_summary,
    plan_table,
    quota_needs,
)
from burst.control.jobs import check_job_file, read_jobs, repeated, validate_job_name
from burst.control.ledger import money
from burst.errors import BurstError, UserError
from burst.protocol import FAILED, INTERRUPTED
from burst.providers import ProviderOptions, burst_home, make_provider
from burst.providers.base import Provider, kept_private
from burst.providers.ec2_checks import threads_notes
from burst.providers.pricing import PriceBook, remember_prices
from burst.records import Job
from burst.transport.base import SKIPPED_NAMES
from burst.results.plot import plot_campaign
from burst.retry import credentials_expired


def build_parser(prog: str = "dispatcher.py") -> argparse.ArgumentParser:
    parser = Parser(
        prog=prog,
        description="Run a campaign: the rows of JOBFILE (instance_type,command) on a pool of machines per type.",
        epilog=f"Any option may also be set in {CONFIG_NAME} beside JOBFILE or in {user_config_path()} "
               "(e.g. machines = 4); the command line wins, and a re-run reuses the options its last run was given. "
               f"Example: {'python ' if prog.endswith('.py') else ''}{prog} local demo awsjobs/demo.csv -c -d --wait",
    )
    parser.add_argument("ami", metavar="AMI", help="EC2 image id (ami-...), or 'local' to run on this machine")
    parser.add_argument("job", metavar="JOB", help="job name: names the bucket and the tags (JOB0, JOB1, ...)")
    parser.add_argument("jobfile", metavar="JOBFILE", type=Path, help="CSV with header instance_type,command")
    parser.add_argument("-c", "--create", action="store_true", help="launch and set up the machines")
    parser.add_argument("-d", "--dispatch", action="store_true", help="start the commands on ready machines")
    parser.add_argument("--wait", action="store_true", help="with -d: wait until every job ends; exit 0 only if all succeeded")
    parser.add_argument("--force", action="store_true", help="rerun every row that already ended (done, failed or interrupted), each as its next attempt")
    parser.add_argument("--tag-offset", type=int, default=0, help="number of the first tag (default 0)")
    parser.add_argument("--install", type=Path, help="setup script run on each machine (default: INSTALL.sh in this folder, else beside JOBFILE, else none)")
    parser.add_argument("--code", type=Path, help="folder copied to each machine; commands run in it (default: JOBFILE's name without .csv, when it exists)")
    parser.add_argument("--results", action="append", metavar="GLOB", help="outputs to save, relative to the code folder (repeatable; default results/**)")
    parser.add_argument("--install-timeout", type=float, default=3600, metavar="SECONDS", help="give up on an INSTALL.sh after this long (default 3600)")
    parser.add_argument("--dry-run", action="store_true", help="check everything and print the plan with prices; create nothing")
    parser.add_argument("--no-check", action="store_true", help="skip the offline checks that each command's script is in the code folder and each instance type exists (a script INSTALL.sh builds, a type newer than botocore)")
    parser.add_argument("-y", "--yes", action="store_true", help="on EC2, start without asking 'Proceed? [y/N]' (needed without a terminal)")
    parser.add_argument("--env", action="append", metavar="NAME[=VALUE]", help="a variable for INSTALL.sh and the commands (repeatable; NAME alone: its value here); nothing else of this environment reaches a machine")
    pool = parser.add_argument_group("pool")
    pool.add_argument("--machines", type=positive_int, metavar="N", help="at most N machines per instance type (default: one per row on EC2, the CPU count locally)")
    pool.add_argument("--slots", type=slots, default="1", metavar="K", help="rows one machine runs at once, each pinned to its own whole physical cores (default 1; 'auto' = one per physical core)")
    pool.add_argument("--repeat", type=positive_int, default=1, metavar="K", help="run each row K times, as units JOB<i>.r1 .. .rK spread over the machines (REPEAT=1..K in their environment; default 1)")
    pool.add_argument("--calibrate", action=argparse.BooleanOptionalAction, default=None, help="each machine measures its CPU and memory speed (about 2 s) when its worker starts; the score goes in every row (default: on EC2; off locally, where every sandbox shares this machine)")
    pool.add_argument("--heartbeat", type=positive_float, default=30.0, metavar="SECONDS", help="lease renewal interval; a row whose machine misses 4 heartbeats runs again (default 30)")
    pool.add_argument("--retries", type=non_negative_int, default=2, metavar="R", help="attempts after an attempt lost its machine (default 2)")
    pool.add_argument("--retry-failed", action=argparse.BooleanOptionalAction, default=False, help="also rerun rows whose command exited non-zero (within --retries)")
    pool.add_argument("--save-patience", type=positive_float, default=600.0, metavar="SECONDS", help="how long a machine retries saving to the bucket before it gives up and keeps the files (default 600)")
    aws = parser.add_argument_group("EC2")
    aws.add_argument("--region", help="AWS region (default: from your AWS config, else us-east-1)")
    aws.add_argument("--profile", help="AWS profile (default: AWS_PROFILE or default)")
    aws.add_argument("--ssh-cidr", help="addresses allowed to SSH in (default: your public address /32; at most a /16, or /48 for IPv6)")
    aws.add_argument("--allow-wide-ssh", action=argparse.BooleanOptionalAction, default=False, help="accept an --ssh-cidr wider than /16 (IPv4) or /48 (IPv6)")
    aws.add_argument("--max-hours", type=float, default=24.0, help="a machine ends itself after this many hours, whatever happens (default 24)")
    market = aws.add_mutually_exclusive_group()
    market.add_argument("--on-demand", action="store_const", dest="market", const="on-demand", default="on-demand",
                        help="on-demand machines (the default; undoes a previous run's --spot)")
    market.add_argument("--spot", action="store_const", dest="market", const="spot", default="on-demand",
                        help="spot machines (60-90%% cheaper; an interrupted row runs again elsewhere); a type AWS has no spot capacity for runs on-demand")
    market.add_argument("--spot-only", action="store_const", dest="market", const="spot-only",
                        help="like --spot, but wait for spot capacity instead of falling back to on-demand")
    aws.add_argument("--threads-per-core", type=int, choices=[1, 2], metavar="N", help="1: every physical core with one hardware thread, its sibling off (RunInstances CpuOptions, where the type allows it; the price stays per instance); default: as AWS sells the type")
    aws.add_argument("--user", help="SSH user on the machines (default: the AMI's: ubuntu, ec2-user, admin, ...; docs/aws.md)")
    aws.add_argument("--ssh-config", type=Path, help="OpenSSH client config consulted per instance (bastions, ports)")
    aws.add_argument("--bucket", help="bucket name (default: the job name); on an S3-compatible store, also set AWS_ENDPOINT_URL_S3 (docs/aws.md)")
    aws.add_argument("--node-root", default="burst", help="folder on each machine holding the job's files (default ~/burst)")
    aws.add_argument("--adopt-bucket", action=argparse.BooleanOptionalAction, default=False,
                     help="use an existing bucket of yours that burst did not make for this job (refused otherwise)")
    aws.add_argument("--subnet", action="append", metavar="ID", dest="subnet",
                     help="subnet to launch into, one per Availability Zone, tried in this order (repeatable; default: the default VPC's)")
    aws.add_argument("--disk-gb", type=positive_int, metavar="N",
                     help="root volume of N GiB (gp3, $0.08 per GB-month, in the plan's prices); default: the AMI's (8 GiB on stock AMIs)")
    aws.add_argument("--instance-profile", metavar="NAME",
                     help="an existing instance profile for the machines (burst then creates no role); its role needs what `burst permissions --node JOB` prints")
    aws.add_argument("--public-ip", action=argparse.BooleanOptionalAction, default=None,
                     help="give each machine a public IPv4 address, or not (--no-public-ip: reach the private one through a VPN or ProxyJump); default: what the subnet gives")
    return parser


def _code_dir(args: argparse.Namespace) -> Path | None:
    if args.code is not None:
        if not args.code.is_dir():
            raise UserError(f"code folder {args.code} does not exist: give an existing folder with --code, or leave --code out.")
        code = args.code.resolve()
    else:
        default = args.jobfile.with_suffix("")
        code = default.resolve() if default.is_dir() else None
    if code is not None:
        validate.check_code_folder(code, SKIPPED_NAMES)
    return code


def _results(args: argparse.Namespace) -> list[str]:
    return validate.check_results(args.results if args.results is not None else ["results/**"])


def _install_script(args: argparse.Namespace) -> Path | None:
    """``--install``, else INSTALL.sh in this folder, else beside the job file, else none (nothing to set up)."""
    if args.install is not None:
        if not args.install.is_file():
            raise UserError(f"install script {args.install} does not exist: give one with --install FILE "
                            "(it may be just `#!/bin/bash`), or leave --install out.")
        return args.install
    return next((p for p in (Path("INSTALL.sh"), args.jobfile.parent / "INSTALL.sh") if p.is_file()), None)


def _previous_record(job: str) -> CampaignRecord | None:
    """The campaign's record from its last run (None: a new campaign)."""
    validate_job_name(job)
    return load_record(job) if record_path(job).is_file() else None


MOVING_OPTIONS = {"bucket": "--bucket", "region": "--region", "node_root": "--node-root"}


def _refuse_moving(previous: CampaignRecord, record: CampaignRecord) -> None:
    """Where a campaign lives cannot change under it: its claims, records and machines would be orphaned."""
    for name, option in MOVING_OPTIONS.items():
        before, now = getattr(previous.options, name), getattr(record.options, name)
        if before != now:
            raise UserError(
                f"job {record.job!r} runs with {option} {before if before is not None else '(default)'}; "
                f"{option} {now if now is not None else '(default)'} would leave its machines and results behind: "
                f"give {option} {before} again (or leave it out), or use another job name."
            )


def plan(args: argparse.Namespace, given: RunOptions | None = None,
         previous: CampaignRecord | None = None) -> tuple[CampaignRecord, list[Job], list[str]]:
    """Check every input before anything is created; raise UserError naming what to fix.

    ``previous``: the campaign's record from its last run (None: a new campaign).
    Returns the campaign record (a re-run's rows merged into the campaign's), the job
    file's rows, and one line per row the re-run adds or removes.
    """
    if not (args.create or args.dispatch):
        raise UserError("nothing to do: add -c to launch and set up machines, -d to start the commands, or both.")
    if args.wait and not args.dispatch:
        raise UserError("--wait waits for the commands to finish: use it with -d.")
    validate_job_name(args.job)
    if args.bucket is not None:
        validate_job_name(args.bucket)
    validate.check_ami(args.ami)
    validate.check_numbers(args)
    validate.check_node_root(args.node_root)
    if args.ami != "local":
        validate.check_region(args.region)
        validate.check_ssh_cidr(args.ssh_cidr, args.allow_wide_ssh)
    if args.ami == "local" and args.market != "on-demand":
        raise UserError(f"--{args.market} is for EC2 machines: local sandboxes have no market; leave it out with AMI 'local'.")
    if args.ami == "local" and args.threads_per_core is not None:
        raise UserError("--threads-per-core is for EC2 machines: local sandboxes run on this machine's CPUs as they are; "
                        "leave it out with AMI 'local'.")
    env = validate.parse_env(args.env)
    check_job_file(args.jobfile)
    job_file = str(args.jobfile.resolve())
    jobs = [dataclasses.replace(job, job_file=job_file)
            for job in repeated(read_jobs(args.jobfile, args.job, args.tag_offset), args.repeat)]
    install = _install_script(args)
    code_dir = _code_dir(args)
    if not args.no_check:
        preflight.check_instance_types(jobs, args.jobfile)
        preflight.check_command_files(jobs, args.jobfile, code_dir, args.jobfile.with_suffix(""))
    if args.ssh_config is not None and not args.ssh_config.is_file():
        raise UserError(f"--ssh-config {args.ssh_config} does not exist.")
    options = ProviderOptions(
        region=args.region, profile=args.profile, ssh_cidr=args.ssh_cidr, allow_wide_ssh=args.allow_wide_ssh,
        max_hours=args.max_hours,
        user=args.user, ssh_config=str(args.ssh_config.resolve()) if args.ssh_config else None,
        bucket=args.bucket, node_root=args.node_root, market=args.market, threads_per_core=args.threads_per_core,
        subnets=list(args.subnet or []), public_ip=args.public_ip, instance_profile=args.instance_profile,
        disk_gb=args.disk_gb, adopt_bucket=args.adopt_bucket,
    )
    record = CampaignRecord(
        job=args.job, image=args.ami, bucket_url="", jobs=jobs, options=options,
        job_file=job_file, code_dir=str(code_dir) if code_dir else "",
        install_file=str(install.resolve()) if install else "", results=_results(args), env=env,
        pool=PoolOptions(machines=args.machines, slots=args.slots, heartbeat=args.heartbeat,
                         retries=args.retries, retry_failed=args.retry_failed, save_patience=args.save_patience,
                         repeat=args.repeat, calibrate=args.ami != "local" if args.calibrate is None else args.calibrate),
        typed_options=given.typed if given else {}, used_options=given.used if given else {},
    )
    if previous is not None:
        previous.check_layout()
        if previous.image != record.image:
            raise UserError(
                f"job {args.job!r} already ran with AMI {previous.image}: use another job name, or "
                f"`{command_name()} cleanup {args.job}` first."
            )
        _refuse_moving(previous, record)
        record.created = previous.created
        return record, jobs, merge_rows(previous, record)
    return record, jobs, []


def main(argv: list[str] | None = None, prog: str = "dispatcher.py") -> int:
    previous: dict[str, CampaignRecord | None] = {}  # read once: for its options, then for its rows

    def previous_options(job: str) -> tuple[dict, dict] | None:
        record = previous[job] = _previous_record(job)
        return (record.typed_options, record.used_options) if record and record.used_options else None

    options = resolve(build_parser(prog), sys.argv[1:] if argv is None else argv, previous_options)
    args = options.args
    working_on(args.job)
    record, jobs, notes = plan(args, options, previous.get(args.job))
    for note in options.notes:
        report(note)
    provider = make_provider(record.image, record.job, record.options)
    try:
        provider.validate(jobs)
        show_preflight(args, record, jobs, provider)
        if provider.login_note():
            report(provider.login_note())
        quote = price_plan(record, provider)
        if args.dry_run or provider.name != "local":
            show_plan(quote)
        else:
            for note in quote.notes:  # e.g. more slots than this machine has cores
                report(f"note: {note}")
        if args.dry_run:
            report("dry run: nothing was created")
            return 0
        if not confirm(quote, args.yes):
            report("not started: nothing was created")
            return 1
        # only once every check passed (a refusal leaves nothing behind); ~/.burst 0700, every file under it 0600
        with kept_private(), dispatcher_lock(record.job):
            remember_prices(quote.book, burst_home() / "prices")
            return run(args, record, provider, quote.book, notes, reopen_failed=args.retry_failed and "retry_failed" in options.given)
    except Exception as error:  # AWS still failing after botocore's retries: one true message, no traceback
        if not is_aws_error(error):
            raise
        live = None if credentials_expired(error) else provider.live_ids()  # expired: asking again would fail too
        raise BurstError(aws_failure(record.job, error, live)) from None
    finally:
        provider.close()


def price_plan(record: CampaignRecord, provider: Provider) -> CampaignPlan:
    """The fleet this run may start, with prices and (where readable) the vCPU quotas it needs."""
    rows_per_type = dict(Counter(job.instance_type for job in record.jobs))
    local = provider.name == "local"
    market = "local" if local else record.options.market
    types = sorted(rows_per_type)
    book = provider.price_book(types, spot=market in SPOT_MARKETS)
    quote = make_plan(record.job, "local" if local else book.region, market, record.options.max_hours, rows_per_type,
                      record.pool.machines_per_type(rows_per_type, local=local), record.pool.slots,
                      provider.vcpus, book, cores=provider.physical_cores(types))
    quote.notes += threads_notes(provider.cpu_info, types, record.options.threads_per_core)
    quote.notes += provider.plan_notes()
    needs = quota_needs(quote)
    provider.check_quotas(needs, quote.notes)
    quote.notes += [w for need in needs if (w := need.warning(quote.where))]
    return quote


def show_preflight(args: argparse.Namespace, record: CampaignRecord, jobs: list[Job], provider: Provider) -> None:
    """What this run will use, before anything is launched (every run and --dry-run)."""
    local = provider.name == "local"
    lines = preflight.preflight_lines(
        job_file=str(args.jobfile), jobs=jobs, code_dir=record.code_dir, install_file=record.install_file,
        results=record.results, slots=record.pool.slots, local=local, image=record.image,
        machines=record.pool.machines_per_type(dict(Counter(job.instance_type for job in jobs)), local=local),
        user=provider.login_user() if hasattr(provider, "login_user") else record.options.user)
    for line in lines:
        report(line)


def show_plan(quote: CampaignPlan) -> None:
    console.print(plan_table(quote))
    for line in plan_summary(quote):
        report(line)


def draw_timeline(campaign: Campaign) -> str:
    """The picture of the campaign, beside its record; a by-product: a failure to draw it is one line, not the run's."""
    try:
        return f"timeline of {campaign.record.job}: {plot_campaign(campaign, timeline_path(campaign.record.job))}"
    except Exception as error:  # noqa: BLE001 - the rows' results stand whatever happens to the picture
        return f"timeline not drawn ({type(error).__name__}: {error}); try `{command_name()} plot {campaign.record.job}`"


def run(args: argparse.Namespace, record: CampaignRecord, provider: Provider, prices: PriceBook,
        notes: list[str], reopen_failed: bool = False) -> int:
    """Prepare (keys, firewall, role, bucket), save the record, and run the rounds (under the job's lock).

    ``reopen_failed``: --retry-failed was typed on this command line: rows that failed run again.
    """
    provider.report = report  # e.g. what an S3-compatible store does not implement
    provider.prepare()
    record.bucket_url = provider.bucket_url
    storage = record.storage(provider)
    record.save(storage)
    for note in notes:
        report(note)
    campaign = Campaign(record, provider, storage, install_timeout=args.install_timeout, report=report, prices=prices)
    if args.force:
        campaign.rerun_final_rows()
    elif reopen_failed:
        campaign.rerun_final_rows(states=frozenset({FAILED, INTERRUPTED}), reason="rerun (--retry-failed)")
    ended = campaign.all_rows_ended()
    if ended is not None:
        report(f"nothing ran: every row of {record.job} had already ended ({count_states(ended)}). To run rows "
               f"again, add --force (every row, as new attempts) or --retry-failed (the failed and interrupted "
               f"ones); a row whose command or type changed in the job file runs again by itself.")
        return 0 if campaign_succeeded(record.tags, ended) or not args.wait else 1
    began = time.monotonic()
    with LiveProgress(console, record.job, local=provider.name == "local") as progress:
        rows = campaign.run(create=args.create, dispatch=args.dispatch, wait=args.wait, on_round=progress.update)
    if not args.wait:
        if args.dispatch:
            report(f"follow with: {command_name()} status {record.job}")
        return 0
    tags = record.tags
    print_status(console, record.job, tags, rows, types={j.tag: j.instance_type for j in record.jobs},
                 told=frozenset(progress.reported))  # each failure once
    ledger = campaign.ledger()
    for line in summary(record.job, tags, rows, time.monotonic() - began, f"cost {money(ledger.total_usd)}"):
        report(line)
    report(draw_timeline(campaign))
    return 0 if campaign_succeeded(tags, rows) else 1
