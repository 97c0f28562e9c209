"""``cloud_setup.py JOB``: make (or check) a job's AWS resources without launching anything.

The dispatcher does the same on every ``-c``; this entry lets a user see what a
job will use (and what it costs nothing to keep) before the first launch, and
``--teardown`` removes it again (the bucket and its results are kept).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from burst.cli import validate
from burst.cli.console import report
from burst.control.jobs import validate_job_name
from burst.providers import ProviderOptions, aws_setup


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cloud_setup.py", description=__doc__.splitlines()[0])
    parser.add_argument("job", metavar="JOB", help="job name (names the bucket, key pair, security group and role)")
    parser.add_argument("--region", help="AWS region (default: from your AWS config, else us-east-1)")
    parser.add_argument("--profile", help="AWS profile")
    parser.add_argument("--ssh-cidr", help="addresses allowed to SSH in (default: your public address /32; at most a /16, or /48 for IPv6)")
    parser.add_argument("--allow-wide-ssh", action="store_true", help="accept an --ssh-cidr wider than /16 (IPv4) or /48 (IPv6)")
    parser.add_argument("--bucket", help="bucket name (default: the job name)")
    parser.add_argument("--key-dir", type=Path, default=Path.home() / ".ssh", help="where the job's private key is kept (default ~/.ssh)")
    parser.add_argument("--teardown", action="store_true", help="remove key pair, security group, role and profile (not the bucket)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    validate_job_name(args.job)
    if args.bucket:
        validate_job_name(args.bucket)
    validate.check_region(args.region)
    validate.check_ssh_cidr(args.ssh_cidr, args.allow_wide_ssh)
    options = ProviderOptions(region=args.region, profile=args.profile, ssh_cidr=args.ssh_cidr,
                              allow_wide_ssh=args.allow_wide_ssh, bucket=args.bucket, key_dir=str(args.key_dir))
    session = aws_setup.make_session(options.region, options.profile)
    if args.teardown:
        removed = aws_setup.teardown(args.job, options, session)
        report("removed: " + (", ".join(removed) if removed else "nothing (already gone)"))
        return 0
    resources = aws_setup.prepare(args.job, options, session)
    for warning in resources.warnings:
        report(f"warning: {warning}")
    report(f"job {args.job} in {resources.region} (account {resources.account}):")
    report(f"  bucket            s3://{resources.bucket}")
    report(f"  key pair          {resources.key_name} (private key {resources.key_file}, mode 0600)")
    report(f"  security group    {resources.security_group_id} (SSH from {resources.ssh_cidr} only)")
    report(f"  instance profile  {resources.instance_profile_name} (the job's bucket + ending its own machines)")
    return 0
