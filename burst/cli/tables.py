"""Status tables for people (rich) and JSON for programs.

A table fits its console (80 columns when the output is not a terminal): one
line per row — tag, state, exit, attempt, seconds, type, then the optional
columns that still fit (machine, slot, heartbeat, command) and a note cut with
"…". Full notes follow the table as ``tag: note``. ``wide`` shows every column.
Colour only reaches a terminal (rich's own detection).
"""

from __future__ import annotations

import json
from collections import Counter

from rich.console import Console
from rich.table import Table
from rich.text import Text

from burst.cli.console import command_name
from burst.cli.row_summary import SHARED, print_summary, row_notes, rows_that_fit, shared_lines, shared_notes
from burst.protocol import DONE, FAILED, INTERRUPTED, REPEAT_MARK, RUNNING, TERMINAL_STATES, UNKNOWN, split_unit
from burst.records import JobStatus

STATE_STYLE = {DONE: "green", FAILED: "red", INTERRUPTED: "yellow", RUNNING: "cyan", UNKNOWN: "magenta"}
WIDE = 400  # --wide: tables as wide as their cells, up to this (wider than a terminal, by request)
NOTE_MIN = 16  # the note keeps at least this many characters before an optional column is shown
OPTIONAL = ("command", "machine", "beat", "slot")  # in the order they get room
SHOWN_ORDER = ("machine", "slot", "beat", "command")


def _note(status: JobStatus) -> str:
    note = status.note or ""
    return "; ".join([note] + status.warnings) if note and status.warnings else (note or "; ".join(status.warnings))


def headline(note: str) -> str:
    """A note in one line: its first; when that line introduces a log's end (``...:``), with the log's
    last line too (a Python crash's exception, not ``Traceback (most recent call last):``)."""
    lines = [line.strip() for line in note.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {lines[-1]}"
    return lines[0] if lines else ""


def _cell(status: JobStatus, column: str) -> str:
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
    if column == "command":
        return status.command
    if column == "state":
        return status.state
    return headline(_note(status))


def _wanted(shown: list[JobStatus], column: str) -> bool:
    if column == "slot":
        return any(s.slot for s in shown)
    if column == "beat":
        return any(s.heartbeat_age is not None for s in shown)
    return any(_cell(s, column) for s in shown)


def _layout(shown: list[JobStatus], tags: list[str], width: int, wide: bool) -> tuple[dict[str, int], int]:
    """The columns with their widths (base ones, then each optional one that leaves the note
    ``NOTE_MIN`` characters), and the note's width."""
    base = ["tag", "state", "exit", "try", "seconds", "type"]
    needed = {c: max([len(c)] + [len(_cell(s, c)) for s in shown]) for c in base[1:] + list(OPTIONAL)}
    needed["tag"] = max([3] + [len(t) for t in tags])
    needed["command"] = min(needed["command"], 40)
    columns = {c: needed[c] for c in base}
    used = sum(w + 3 for w in columns.values()) + 4  # each cell's padding and border, the table's edges
    for column in OPTIONAL:
        if _wanted(shown, column) and (wide or used + needed[column] + 3 + NOTE_MIN <= width):
            columns[column] = needed[column]
            used += needed[column] + 3
    ordered = {c: columns[c] for c in base + [c for c in SHOWN_ORDER if c in columns]}
    return ordered, max(NOTE_MIN, width - used)


def status_table(job: str, tags: list[str], statuses: dict[str, JobStatus | None], width: int = 80,
                 wide: bool = False) -> Table:
    """One line per row, at most ``width`` wide (unless ``wide``)."""
    shown = [s for s in statuses.values() if s is not None]
    columns, note_width = _layout(shown, tags, width, wide)
    table = Table(title=f"job {job}", title_justify="left")
    for column, size in columns.items():
        if wide:
            table.add_column(column, overflow="fold")
        else:
            table.add_column(column, no_wrap=True, overflow="ellipsis", min_width=size, max_width=size)
    if wide:
        table.add_column("note", overflow="fold")
    else:
        table.add_column("note", no_wrap=True, overflow="ellipsis", max_width=note_width)
    for tag in tags:
        status = statuses.get(tag)
        if status is None:
            table.add_row(tag, "-", *[""] * (len(columns) - 2), "no status yet")
            continue
        cells = [Text(_cell(status, c), style=STATE_STYLE.get(status.state, "cyan") if c == "state" else "")
                 for c in list(columns)[1:]]
        table.add_row(tag, *cells, _cell(status, "note"))
    return table


def notes_below(tags: list[str], statuses: dict[str, JobStatus | None], told: frozenset = frozenset()) -> list[str]:
    """Every row's whole note, as ``tag: note`` (continuation lines indented); a note that
    several rows share, once, as ``1,000 rows: note``. ``told``: (tag, attempt) pairs whose
    note the person saw already (a live run printed it), left out."""
    tags = [t for t in tags if (t, statuses[t].attempt if statuses.get(t) else 0) not in told]
    shared = shared_notes(tags, statuses)
    lines = []
    for tag in tags:
        for text in row_notes(statuses.get(tag)):
            if text not in shared:
                first, *rest = text.splitlines()
                lines.append(f"{tag}: {first}")
                lines += [f"  {line}" for line in rest]
    return lines + shared_lines(shared)


def _out(console: Console, wide: bool) -> Console:
    """The console, or for ``--wide`` one as wide as the cells need (rich never prints wider than its console)."""
    if not wide:
        return console
    return Console(file=console.file, width=WIDE, force_terminal=console.is_terminal, highlight=False,
                   color_system=console.color_system)


def print_status(console: Console, job: str, tags: list[str], statuses: dict[str, JobStatus | None],
                 wide: bool = False, every_row: bool = False, types: dict[str, str] | None = None,
                 told: frozenset = frozenset()) -> None:
    """The table at the console's width, then the full notes (but those of ``told``: (tag, attempt) pairs
    a live run printed); a summary when the rows are more than fit (``every_row``: the table all the same).
    ``types``: each row's instance type, for rows with no status yet."""
    if not every_row and len(tags) > rows_that_fit(console):
        types = dict(types or {}) | {t: s.instance_type for t, s in statuses.items() if s is not None and s.instance_type}
        hint = (f"{len(tags):,} rows are more than a screen: `{command_name()} status {job} --all` lists every row, "
                f"`--json` gives every record.")
        print_summary(console, job, tags, statuses, types, STATE_STYLE, hint)
    else:
        _out(console, wide).print(status_table(job, tags, statuses, width=console.width, wide=wide))
        for line in notes_below(tags, statuses, told):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    if (line := repetitions_line(tags, statuses)) is not None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def machines_table(machines: list[dict], width: int = 80, wide: bool = False) -> Table:
    """One line per machine; its rows and note cut to what the width leaves (all of them with ``wide``)."""
    table = Table(title="machines", title_justify="left")
    sizes = {c: max([len(c)] + [len(m[k]) for m in machines]) for c, k in (("machine", "id"), ("type", "instance_type"), ("state", "state"))}
    for column, size in sizes.items():
        table.add_column(column, no_wrap=True, min_width=size)
    room = max(16, width - sum(size + 3 for size in sizes.values()) - 4 - 6)
    if wide:
        table.add_column("rows", overflow="fold")
        table.add_column("note", overflow="fold")
    else:
        table.add_column("rows", no_wrap=True, overflow="ellipsis", max_width=room // 2)
        table.add_column("note", no_wrap=True, overflow="ellipsis", max_width=room - room // 2)
    for machine in machines:
        table.add_row(machine["id"], machine["instance_type"], machine["state"], " ".join(machine["rows"]),
                      machine["note"].splitlines()[0] if machine["note"] else "")
    return table


def print_machines(console: Console, machines: list[dict], wide: bool = False, every_row: bool = False) -> None:
    """One line per machine, then their notes (a note several machines share, once with its count);
    when they are more than fit, the counts by state and the live ones only."""
    shown = machines
    if not every_row and len(machines) > rows_that_fit(console):
        states = Counter(m["state"] for m in machines)
        console.print(f"{len(machines):,} machines: " + ", ".join(f"{n:,} {state}" for state, n in states.most_common()),
                      markup=False, highlight=False)
        shown = [m for m in machines if m["live"]]
        if len(shown) > rows_that_fit(console):
            console.print(f"{len(shown):,} of them live; the first {rows_that_fit(console)}:", markup=False, highlight=False)
            shown = shown[:rows_that_fit(console)]
    if shown:
        _out(console, wide).print(machines_table(shown, width=console.width, wide=wide))
    carriers: dict[str, list[str]] = {}
    for machine in shown:
        if machine["note"]:
            carriers.setdefault(machine["note"], []).append(machine["id"])
    for note, ids in carriers.items():
        first, *rest = note.splitlines()
        who = f"{len(ids):,} machines" if len(ids) >= SHARED else ", ".join(ids)
        console.print(f"{who}: {first}", markup=False, highlight=False, soft_wrap=True)
        for line in rest:
            console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)


def status_json(job: str, tags: list[str], statuses: dict[str, JobStatus | None], machines: list[dict]) -> str:
    rows = [statuses[t].to_dict() for t in tags if statuses.get(t) is not None]
    found = {"job": job, "rows": rows, "machines": machines}
    if (counts := repetitions(tags, statuses)) is not None:
        found["repetitions"] = counts
    return json.dumps(found, indent=2, ensure_ascii=False)


def exit_status(tags: list[str], statuses: dict[str, JobStatus | None]) -> int:
    """``status``'s exit: 3 while rows are still to run (a script polls until it is not 3); then 0 when
    every row is done, 1 when any failed, was interrupted or is unknown (its record unreadable)."""
    states = [s.state if s is not None else "pending" for s in (statuses.get(t) for t in tags)]
    if any(state not in TERMINAL_STATES for state in states):
        return 3
    return 0 if all(state == DONE for state in states) else 1


def repetitions(tags: list[str], statuses: dict[str, JobStatus | None]) -> dict[str, int] | None:
    """With ``--repeat``: how many job-file rows there are and how many are done, a row counting done
    when every one of its repetitions is (``{"rows", "done", "repeat"}``); None without repetitions."""
    if not any(REPEAT_MARK in tag for tag in tags):  # the common case, decided without a list per row
        return None
    units: dict[str, list[str]] = {}
    for tag in tags:
        row, repeat = split_unit(tag)
        units.setdefault(row, []).append(tag)
    if all(len(group) == 1 and group[0] == row for row, group in units.items()):
        return None
    done = sum(all((s := statuses.get(t)) is not None and s.state == DONE for t in group) for group in units.values())
    return {"rows": len(units), "done": done, "repeat": max(len(group) for group in units.values())}


def repetitions_line(tags: list[str], statuses: dict[str, JobStatus | None]) -> str | None:
    counts = repetitions(tags, statuses)
    if counts is None:
        return None
    return (f"{counts['done']} of {counts['rows']} rows done in all {counts['repeat']} repetitions "
            f"({len(tags)} units: {count_states({t: statuses.get(t) for t in tags})})")


def campaign_succeeded(tags: list[str], statuses: dict[str, JobStatus | None]) -> bool:
    return all((s := statuses.get(t)) is not None and s.state == DONE and s.exit_code == 0 for t in tags)


def count_states(statuses: dict[str, JobStatus | None]) -> str:
    counts: dict[str, int] = {}
    for status in statuses.values():
        state = status.state if status else "pending"
        counts[state] = counts.get(state, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
