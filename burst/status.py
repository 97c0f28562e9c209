"""Status tables for people (rich) and JSON for programs."""

from __future__ import annotations

import json

from rich.table import Table

from burst.protocol import DONE, FAILED, INTERRUPTED, RUNNING
from burst.records import JobStatus

STATE_STYLE = {DONE: "green", FAILED: "red", INTERRUPTED: "yellow", RUNNING: "cyan"}


def _cell(status: JobStatus, column: str) -> str:
    if column == "state":
        return f"[{STATE_STYLE.get(status.state, 'cyan')}]{status.state}[/]"
    if column == "exit":
        return "" if status.exit_code is None else str(status.exit_code)
    if column == "try":
        return str(status.attempt) if status.attempt else ""
    if column == "seconds":
        return "" if status.seconds is None else f"{status.seconds:.1f}"
    if column == "machine":
        return status.instance_id
    if column == "slot":
        return "" if status.slot is None or status.slot < 0 else str(status.slot)
    if column == "beat":  # seconds since the running attempt's last heartbeat
        return "" if status.heartbeat_age is None else f"{status.heartbeat_age:.0f}s"
    if column == "type":
        return status.instance_type
    note = status.note.splitlines()[0] if status.note else ""
    return "; ".join([note] + status.warnings if note else status.warnings) if status.warnings else note


def status_table(job: str, tags: list[str], statuses: dict[str, JobStatus | None]) -> Table:
    """One line per row; the slot and heartbeat columns only when some row has one."""
    shown = [s for s in statuses.values() if s is not None]
    columns = ["tag", "state", "exit", "try", "seconds", "type", "machine"]
    if any(s.slot for s in shown):
        columns.append("slot")
    if any(s.heartbeat_age is not None for s in shown):
        columns.append("beat")
    table = Table(title=f"job {job}", title_justify="left")
    for column in columns:
        table.add_column(column, no_wrap=True)
    table.add_column("note", overflow="fold", ratio=1, min_width=24)
    for tag in tags:
        status = statuses.get(tag)
        if status is None:
            table.add_row(tag, "-", *[""] * (len(columns) - 2), "no status yet")
            continue
        table.add_row(tag, *[_cell(status, c) for c in columns[1:]], _cell(status, "note"))
    return table


def machines_table(machines: list[dict]) -> Table:
    table = Table(title="machines", title_justify="left")
    for column in ("machine", "type", "state", "rows"):
        table.add_column(column, no_wrap=True)
    table.add_column("note", overflow="fold", ratio=1)
    for machine in machines:
        table.add_row(machine["id"], machine["instance_type"], machine["state"], " ".join(machine["rows"]),
                      machine["note"].splitlines()[0] if machine["note"] else "")
    return table


def status_json(job: str, tags: list[str], statuses: dict[str, JobStatus | None], machines: list[dict]) -> str:
    rows = [statuses[t].to_dict() for t in tags if statuses.get(t) is not None]
    return json.dumps({"job": job, "rows": rows, "machines": machines}, indent=2, ensure_ascii=False)


def campaign_succeeded(tags: list[str], statuses: dict[str, JobStatus | None]) -> bool:
    return all((s := statuses.get(t)) is not None and s.state == DONE and s.exit_code == 0 for t in tags)


def count_states(statuses: dict[str, JobStatus | None]) -> str:
    counts: dict[str, int] = {}
    for status in statuses.values():
        state = status.state if status else "pending"
        counts[state] = counts.get(state, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
