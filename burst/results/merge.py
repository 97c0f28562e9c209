"""``--merge``: one table of every row's result CSVs, with burst's facts about the run in front.

The user's columns are the data: never renamed, dropped or overwritten. burst's
own columns have fixed names (``BURST_COLUMNS``); where a result CSV has a column
of the same name, burst's gives way under the prefix ``burst_`` in the whole table
(so one name never means two things in two rows). Types are kept with pandas'
nullable dtypes: an integer column stays integers when a row has no value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from burst.errors import UserError
from burst.protocol import CAMPAIGN_KEY, ROWS_PREFIX, results_prefix, split_unit
from burst.records import Job, JobStatus, from_known_fields

PREFIX = "burst_"
INTEGER, FLOAT, TEXT = "Int64", "Float64", "string"
# burst's columns, in order, with their types. The first four lead every table.
BURST_COLUMNS: dict[str, str] = {
    "job": TEXT, "tag": TEXT, "instance_type": TEXT, "exit_code": INTEGER,
    "command": TEXT, "attempt": INTEGER, "csv_line": INTEGER, "note": TEXT, "row": TEXT, "repeat": INTEGER,
    "state": TEXT, "started": TEXT, "ended": TEXT, "seconds": FLOAT, "slot": INTEGER, "cpus": TEXT, "cores": TEXT,
    "lifecycle": TEXT, "price_per_hour": FLOAT, "cost_usd": FLOAT,
    "instance_id": TEXT, "machine_score": FLOAT, "host": TEXT, "cpu_model": TEXT, "cpu_count": INTEGER,
    "kernel": TEXT, "os": TEXT,
    "python": TEXT, "instance_availability_zone": TEXT, "instance_image_id": TEXT, "instance_launch_time": TEXT,
    "result_file": TEXT,
}
PROVENANCE = ("host", "cpu_model", "cpu_count", "kernel", "os", "python")
INSTANCE_FACTS = ("availability_zone", "image_id", "launch_time")


@dataclass
class Merged:
    table: pd.DataFrame
    warnings: list[str] = field(default_factory=list)  # one per file that could not be read


class Unreadable(Exception):
    """A result CSV that is not a readable table (empty, binary, not UTF-8, malformed)."""


def read_result_csv(path: Path) -> pd.DataFrame:
    """A result CSV with nullable dtypes (integers stay integers), or ``Unreadable`` saying why."""
    with open(path, "rb") as handle:
        head = handle.read(8192)
    if not head.strip():
        raise Unreadable("the file is empty")
    if b"\0" in head:
        raise Unreadable("binary content (NUL bytes), not CSV text")
    try:
        return pd.read_csv(path, dtype_backend="numpy_nullable", encoding="utf-8")
    except UnicodeDecodeError as error:
        raise Unreadable(f"not UTF-8 text ({error.reason} at byte {error.start})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as error:
        raise Unreadable(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__) from None


def campaign_jobs(folder: Path) -> dict[str, Job]:
    """tag -> the job file's row, from the downloaded ``campaign.json`` ({} without one)."""
    path = folder / CAMPAIGN_KEY
    try:
        rows = json.loads(path.read_text(encoding="utf-8")).get("jobs", [])
        return {row["tag"]: from_known_fields(Job, row) for row in rows}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def facts_of(status: JobStatus, job: Job | None) -> dict[str, Any]:
    """burst's columns (without ``result_file``) for one row's current attempt."""
    provenance = status.provenance if isinstance(status.provenance, dict) else {}
    instance = status.instance if isinstance(status.instance, dict) else {}
    cpus = status.cpus if isinstance(status.cpus, list) else []
    cores = status.cores if isinstance(status.cores, list) else []
    row, repeat = split_unit(status.tag)
    facts: dict[str, Any] = {
        "job": status.job, "tag": status.tag, "instance_type": status.instance_type or (job.instance_type if job else ""),
        "exit_code": status.exit_code, "command": status.command or (job.command if job else ""),
        "row": row, "repeat": status.repeat if isinstance(status.repeat, int) else repeat,
        "attempt": status.attempt, "csv_line": getattr(status, "csv_line", None) or (job.line if job else None),
        "note": status.note, "state": status.state, "started": status.started, "ended": status.ended,
        "seconds": status.seconds, "slot": status.slot,
        "cpus": " ".join(str(c) for c in cpus),  # "" = every CPU of the machine
        "cores": " ".join(str(c) for c in cores),  # "<package>:<core_id>" of each of the slot's physical cores
        "lifecycle": status.lifecycle or instance.get("lifecycle", ""),
        "price_per_hour": status.price_per_hour, "cost_usd": status.cost_usd, "instance_id": status.instance_id,
        "machine_score": status.machine_score,
    }
    facts.update({name: provenance.get(name) for name in PROVENANCE})
    facts.update({f"instance_{name}": instance.get(name) for name in INSTANCE_FACTS})
    return facts


def _typed(records: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=list(BURST_COLUMNS))
    for name, dtype in BURST_COLUMNS.items():
        values = frame[name].astype(object).where(frame[name].notna(), None).tolist()
        if dtype != TEXT:
            try:
                frame[name] = pd.array(values, dtype=dtype)
                continue
            except (TypeError, ValueError):  # a status written by hand or by another version: kept as text
                pass
        frame[name] = pd.array([v if v is None else str(v) for v in values], dtype=TEXT)
    return frame


def burst_names(user_columns: set[str]) -> dict[str, str]:
    """burst's column -> its name in the table: ``burst_<name>`` (again if need be) where a result CSV has the name."""
    names = {}
    for column in BURST_COLUMNS:
        name = column
        while name in user_columns:
            name = PREFIX + name
        names[column] = name
    return names


def job_file_order(tag: str, jobs: dict[str, Job]) -> tuple:
    """Rows in the campaign's order (its job file's, line by line), not as text (solver10 before solver2);
    a tag the campaign does not know comes after, by its number."""
    position = list(jobs).index(tag) if tag in jobs else len(jobs)
    return (position, [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", tag)])


def merge(folder: Path) -> Merged:
    """Every result CSV of each row's current attempt (``<tag>/attempts/<n>/results/**.csv``), one row per CSV row.

    A row whose attempt left no readable CSV row still gets one row of burst's
    facts, so failures stay visible; each unreadable file is one warning.
    """
    warnings: list[str] = []
    jobs = campaign_jobs(folder)
    facts: list[dict[str, Any]] = []
    tables: list[pd.DataFrame] = []
    # this layout's statuses; a folder downloaded from a first-layout bucket has them beside the results
    order = lambda path: job_file_order(path.parent.name, jobs)  # noqa: E731
    status_files = sorted(folder.glob(f"{ROWS_PREFIX}*/status.json"), key=order) or sorted(folder.glob("*/status.json"), key=order)
    for status_file in status_files:
        tag = status_file.parent.name
        try:
            status = JobStatus.from_dict({"tag": tag, "job": "", "state": "",
                                          **json.loads(status_file.read_text(encoding="utf-8"))})
        except (ValueError, TypeError) as error:
            warnings.append(f"could not read {status_file}: {error}; its row has the tag only")
            status = JobStatus(job="", tag=tag, state="")
        row = facts_of(status, jobs.get(tag))
        results = folder / results_prefix(tag, status.attempt or 1)
        found = False
        for path in sorted(results.rglob("*.csv")) if results.is_dir() else []:
            try:
                table = read_result_csv(path)
            except Unreadable as why:
                warnings.append(f"could not read the result CSV {path}: {why}; its row is kept without it")
                continue
            if table.empty:
                continue
            name = path.relative_to(results).as_posix()
            facts.extend({**row, "result_file": name} for _ in range(len(table)))
            tables.append(table)
            found = True
        if not found:
            facts.append({**row, "result_file": None})
            tables.append(pd.DataFrame(index=range(1)))
    if not facts:
        raise UserError(f"{folder} holds no {ROWS_PREFIX}<tag>/status.json: download a job's bucket into it first.")
    user = pd.concat([t.reset_index(drop=True) for t in tables], ignore_index=True, sort=False)
    names = burst_names(set(user.columns))
    ours = _typed(facts).rename(columns=names)
    return Merged(pd.concat([ours, user], axis=1), warnings)
