"""Job CSV -> validated ``Job`` records, with one clear message per mistake.

The file is read with the ``csv`` module rather than pandas: only it reports
the physical line of each row (commands may be quoted over several lines), and
every message here names that line.
"""

from __future__ import annotations

import csv
import dataclasses
import errno
import os
import re
from pathlib import Path

from burst.errors import UserError
from burst.protocol import unit_tag
from burst.records import Job

HEADER = ("instance_type", "command")
MAX_ARG_STRLEN = 131072  # Linux: the most bytes of one argument of a program (with its NUL): 32 pages
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")  # fullmatch: "$" would let "abc\n" through
_INSTANCE_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]*")


def suggest_job_name(name: str) -> str:
    cleaned = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    cleaned = re.sub(r"-{2,}", "-", cleaned)[:63].strip("-")
    return cleaned if len(cleaned) >= 3 else (cleaned + "-job")[:63]


def validate_job_name(name: str) -> None:
    """The job names the bucket, the key pair and every tag: S3's bucket rules apply."""
    if _BUCKET_NAME.fullmatch(name) and "--" not in name and not name.startswith(("xn-", "sthree-")):
        return
    raise UserError(
        f"job name {name!r} cannot be a bucket name: use 3 to 63 lowercase letters, digits "
        f"and hyphens, starting and ending with a letter or digit (S3's rules; the job's "
        f"bucket and tags are named after it). Try {suggest_job_name(name)!r}."
    )


def make_tag(job: str, index: int) -> str:
    """Tags are ``JOB<i>`` as in aws-runner: paj170, paj171, ..."""
    return f"{job}{index}"


def repeated(jobs: list[Job], repeats: int) -> list[Job]:
    """``--repeat K``: each row as K units ``<tag>.r1`` .. ``<tag>.rK`` (burst.protocol.unit_tag), spread over the
    machines like any rows; K = 1 leaves the rows as they are."""
    return [dataclasses.replace(job, tag=unit_tag(job.tag, k, repeats)) for job in jobs for k in range(1, repeats + 1)]


def check_job_file(path: Path) -> None:
    """A job file that is a symlink loop is named as one (not "does not exist", not a traceback)."""
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UserError(f"job file {path} is a symlink loop (it points at itself through its links): "
                            f"point it at the CSV file, or give the CSV's own path.") from None


def read_jobs(path: Path, job: str, tag_offset: int = 0) -> list[Job]:
    """Parse and validate the job file; raise ``UserError`` naming the file and line."""
    validate_job_name(job)
    if tag_offset < 0:
        raise UserError(f"--tag-offset {tag_offset} is negative: tags are {job}<offset>, {job}<offset+1>, ...; use 0 or more.")
    path = Path(path)
    check_job_file(path)
    if not path.is_file():
        raise UserError(f"job file {path} does not exist: give the path of a CSV with the header 'instance_type,command'.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise UserError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start}): save the job file as UTF-8 CSV.") from None
    if not text.strip():
        raise UserError(f"{path} is empty: its first line must be the header 'instance_type,command', then one row per job.")

    csv.field_size_limit(max(csv.field_size_limit(), 16 * MAX_ARG_STRLEN))  # a long command is told by its own rule
    reader = csv.reader(text.splitlines(keepends=True), skipinitialspace=True, strict=True)
    try:
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as error:
        raise UserError(f"{path} line {reader.line_num}: {error}: quote a command that holds commas or quotes, as \"cmd, with comma\" (double a quote inside: \"\").") from None

    rows = [(line, row) for line, row in rows if row and any(cell.strip() for cell in row)]
    header_line, header = rows[0]
    names = tuple(cell.strip() for cell in header)
    if names != HEADER:
        missing = [name for name in HEADER if name not in names]
        extra = [name for name in names if name not in HEADER]
        details = []
        if missing:
            details.append("missing " + ", ".join(repr(m) for m in missing))
        if extra:
            details.append("unexpected " + ", ".join(repr(e) for e in extra))
        if not details:
            details.append("columns out of order")
        raise UserError(
            f"{path} line {header_line}: header is {','.join(names)!r} ({'; '.join(details)}): "
            f"the first line must be exactly 'instance_type,command'."
        )

    jobs: list[Job] = []
    for line, row in rows[1:]:
        if row[0].lstrip().startswith("#"):
            continue  # a commented-out job
        if len(row) != 2:
            how = "too many" if len(row) > 2 else "too few"
            raise UserError(
                f"{path} line {line}: {how} fields ({len(row)}, expected 2: instance_type,command): "
                f"put the command in double quotes when it contains a comma."
            )
        instance_type, command = row[0].strip(), row[1].strip()
        if not instance_type:
            raise UserError(f"{path} line {line}: empty instance_type: name a machine type such as t3.micro (any label works with AMI=local).")
        if not _INSTANCE_TYPE.fullmatch(instance_type):
            raise UserError(f"{path} line {line}: instance_type {instance_type!r} is not a machine type name (letters, digits, dots, hyphens), e.g. c5.large.")
        if "\0" in command:
            raise UserError(f"{path} line {line}: the command holds a NUL byte, which no shell command can carry: remove it (a binary file saved as CSV?).")
        if not command:
            raise UserError(f"{path} line {line}: empty command: write the shell command this job runs.")
        if len(command.encode()) >= MAX_ARG_STRLEN:
            raise UserError(f"{path} line {line}: the command is {len(command.encode()):,} bytes; Linux runs a command "
                            f"(`bash -c COMMAND`) of at most {MAX_ARG_STRLEN - 1:,} bytes (MAX_ARG_STRLEN): put it in a "
                            f"script in the code folder and run the script.")
        jobs.append(Job(tag=make_tag(job, tag_offset + len(jobs)), instance_type=instance_type, command=command, line=line))

    if not jobs:
        raise UserError(f"{path} has a header but no jobs: add one line 'instance_type,command' per job below it.")
    return jobs
