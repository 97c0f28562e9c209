"""The dispatcher's checks of its arguments, run before anything is created (no lock, no record, no AWS call).

Each check raises ``UserError`` with one message that names the value and the
fix. The job file and the job name are checked in ``burst.control.jobs``; what only AWS
can answer (does the AMI exist, are the instance types offered) in the
provider's ``validate``.
"""

from __future__ import annotations

import math
import os
import posixpath
import re
import stat
from pathlib import Path
from typing import Iterable, Mapping

from burst.errors import UserError

_AMI = re.compile(r"ami-[0-9a-f]{8,17}")
# A region's shape: us-east-1, eu-central-2, us-gov-west-1, ap-southeast-5, cn-north-1, ...
_REGION = re.compile(r"[a-z]{2}(-[a-z]+){1,3}-\d{1,2}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What burst itself sets on a machine (and what a sandbox needs as it is): not for --env.
BURST_VARIABLES = frozenset({"JOB", "TAG", "ATTEMPT", "SLOT", "INSTANCE_ID", "INSTANCE_TYPE", "HOME", "PATH", "USER"})


def check_ami(ami: str) -> None:
    """An AMI is ``local`` or an EC2 image id (``ami-`` and 8 to 17 hex digits)."""
    if ami == "local" or _AMI.fullmatch(ami):
        return
    hint = " (did you mean 'local'?)" if ami.strip().lower() == "local" else ""
    raise UserError(
        f"AMI {ami!r} is neither 'local' (run on this machine) nor an EC2 image id such as "
        f"ami-0abc1234def567890 ('ami-' followed by hex digits){hint}: give one of those as the "
        f"first argument. An AMI id is found in the EC2 console > AMIs, or with `aws ec2 "
        f"describe-images --owners amazon --filters Name=name,Values='ubuntu/images/*22.04*'`."
    )


def check_number(option: str, value: float, *, low: float, high: float, low_inclusive: bool = False,
                 what: str = "a number") -> None:
    """``value`` is finite and in ``(low, high]`` (``[low, high]`` with ``low_inclusive``)."""
    above = value >= low if low_inclusive else value > low
    if isinstance(value, float) and not math.isfinite(value) or not above or value > high:
        bound = f"at least {low:g}" if low_inclusive else f"more than {low:g}"
        raise UserError(f"{option} {value!r} is not {what} {bound} and at most {high:.0f}: give a finite number in that range.")


def check_numbers(args) -> None:
    """Every numeric option of the dispatcher, finite and in range."""
    check_number("--max-hours", args.max_hours, low=0, high=24 * 365, what="a number of hours")
    check_number("--install-timeout", args.install_timeout, low=0, high=7 * 24 * 3600, what="a number of seconds")
    check_number("--heartbeat", args.heartbeat, low=1, high=3600, low_inclusive=True, what="a number of seconds")
    check_number("--save-patience", args.save_patience, low=0, high=7 * 24 * 3600, what="a number of seconds")
    check_number("--retries", args.retries, low=0, high=100, low_inclusive=True, what="a whole number")
    if args.machines is not None:
        check_number("--machines", args.machines, low=1, high=10_000, low_inclusive=True, what="a whole number")
    if args.slots != "auto":
        check_number("--slots", int(args.slots), low=1, high=MAX_SLOTS, low_inclusive=True, what="a whole number")


MAX_SLOTS = 448  # the most vCPUs of any EC2 instance type (u-*tb1.112xlarge); on EC2 the type's physical cores bound it (cost_plan)


def check_code_folder(code: Path, skipped: Iterable[str] = ()) -> None:
    """The code folder holds only what can be copied to a machine: files, folders, symlinks (no FIFO, socket, device)."""
    skipped = set(skipped)
    for folder, folders, files in os.walk(code):
        folders[:] = [name for name in folders if name not in skipped]
        for name in files:
            path = Path(folder, name)
            mode = path.lstat().st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
                raise UserError(f"{path} in the code folder is {kind}, not a file: burst copies the code folder to "
                                f"every machine and can copy only files, folders and symlinks; move it out of {code}.")


def check_results(patterns: Iterable[str]) -> list[str]:
    """``--results`` globs: not empty, relative to the code folder, never above it."""
    patterns = list(patterns)
    if not patterns:
        raise UserError("--results is an empty list (results = [] in a burst.toml?): give at least one pattern "
                        "relative to the code folder, such as results/**, or leave it out for the default.")
    for pattern in patterns:
        if not pattern.strip() or "\0" in pattern:
            raise UserError(f"--results {pattern!r} is empty: give a pattern relative to the code folder, such as results/** or out/*.csv.")
        if posixpath.isabs(pattern) or pattern.startswith("~") or ".." in pattern.split("/"):
            raise UserError(f"--results {pattern!r} must be a pattern relative to the code folder, such as results/** or out/*.csv.")
    return patterns


def check_node_root(root: str) -> None:
    """``--node-root`` is a folder inside the node user's home: relative, never above it."""
    parts = root.split("/")
    if (not root.strip() or "\0" in root or "\n" in root or root.startswith(("/", "~"))
            or ".." in parts or posixpath.normpath(root) in (".", "")):
        raise UserError(
            f"--node-root {root!r} must be a folder inside the node user's home, given relative to it "
            f"(such as burst or work/burst; not absolute, not ~, no '..'): burst writes only below it."
        )


def check_region(region: str | None) -> None:
    """A region botocore knows (in any partition): a typo never reaches an endpoint lookup."""
    if region is None:
        return
    import boto3
    import botocore

    session = boto3.session.Session()
    known = {r for partition in session.get_available_partitions() for r in session.get_available_regions("ec2", partition)}
    if region in known:
        return
    newer = (f" If {region} is a region newer than this botocore ({botocore.__version__}), upgrade it: "
             f"pip install -U boto3." if _REGION.fullmatch(region) else "")
    raise UserError(
        f"--region {region!r} is not an AWS region: give one such as us-east-1, eu-west-1 or "
        f"ap-southeast-2 (`aws ec2 describe-regions` lists yours), or leave --region out to use your "
        f"AWS config's.{newer}"
    )


def check_ssh_cidr(text: str | None, allow_wide: bool) -> None:
    """SSH from at most a /16 (IPv4) or /48 (IPv6), unless ``--allow-wide-ssh``."""
    if text is None:
        return
    from burst.providers.aws_firewall import validate_cidr

    validate_cidr(text, allow_wide=allow_wide)


def parse_env(items: Iterable[str] | None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``--env NAME=VALUE`` or ``--env NAME`` (the dispatcher's value) -> {NAME: VALUE}.

    AWS_* names are refused: nodes reach AWS with their instance profile, and a
    credential of the dispatcher's never goes to a machine.
    """
    environ = os.environ if environ is None else environ
    found: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not _ENV_NAME.fullmatch(name):
            raise UserError(f"--env {item!r}: {name!r} is not a variable name (letters, digits, _; not starting with a digit): write --env NAME=VALUE or --env NAME.")
        if name.upper().startswith("AWS_"):
            raise UserError(
                f"--env {name}: burst never passes AWS_* variables to machines (they reach AWS with the job's "
                f"instance profile, and your credentials stay here): leave it out."
            )
        if name in BURST_VARIABLES or name.startswith("BURST_"):
            raise UserError(f"--env {name}: burst sets {name} on every machine itself: use another name.")
        if not sep:
            if name not in environ:
                raise UserError(f"--env {name}: {name} is not set here: set it, or give the value as --env {name}=VALUE.")
            value = environ[name]
        if "\0" in value:
            raise UserError(f"--env {name}: the value holds a NUL byte, which no environment can carry: remove it.")
        found[name] = value
    return found
