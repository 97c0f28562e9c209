"""The view of a campaign with more rows than fit a screen: a summary instead of a line per row.

Counts by state and by type; failures grouped by reason (a count and three
example tags each); the rows still running; notes many rows share, each said
once with its count. ``status --all`` lists every row, ``status --json`` gives
every record. Also the rule that groups shared notes in the full view.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from rich.console import Console
from rich.table import Table
from rich.text import Text

from burst.protocol import DONE, FAILED, INTERRUPTED, PENDING, RUNNING, UNKNOWN
from burst.records import JobStatus, seconds_since

STATE_ORDER = (DONE, FAILED, INTERRUPTED, UNKNOWN, RUNNING, PENDING)
SHARED = 3  # a note on this many rows or more is said once, with its count
EXAMPLES = 3  # example tags per failure reason
REASONS = 8  # failure reasons (and shared notes) listed; the rest are counted in one line
RUNNING_SHOWN = 10  # running rows listed; the rest are counted in one line


def rows_that_fit(console: Console) -> int:
    """How many rows a line-per-row table may have: a screen's height less the lines around it (30 in a pipe)."""
    return max(30, console.height - 10)


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def row_notes(status: JobStatus | None, with_note: bool = True) -> list[str]:
    """A row's note and each of its warnings, as separate texts (a shared warning is told apart from a row's own note)."""
    if status is None:
        return []
    return [text for text in [status.note if with_note else "", *status.warnings] if text]


def shared_notes(tags: list[str], statuses: dict[str, JobStatus | None],
                 reasons_apart: bool = False) -> dict[str, list[str]]:
    """note text -> the tags that carry it, for the texts on ``SHARED`` rows or more.

    ``reasons_apart``: leave out the notes of failed rows (their reasons are grouped on their own).
    """
    carriers: dict[str, list[str]] = defaultdict(list)
    for tag in tags:
        status = statuses.get(tag)
        with_note = not (reasons_apart and _state(status) in (FAILED, INTERRUPTED))
        for text in row_notes(status, with_note):
            carriers[text].append(tag)
    return {text: found for text, found in carriers.items() if len(found) >= SHARED}


def shared_lines(shared: dict[str, list[str]], limit: int | None = None) -> list[str]:
    """``1,000 rows: no output matches …`` once per shared note, most frequent first."""
    ordered = sorted(shared.items(), key=lambda item: (-len(item[1]), item[0]))
    shown = ordered if limit is None else ordered[:limit]
    lines = []
    for text, tags in shown:
        first, *rest = text.splitlines()
        lines.append(f"{len(tags):,} rows: {first}")
        lines += [f"  {line}" for line in rest]
    if len(ordered) > len(shown):
        lines.append(f"… {len(ordered) - len(shown):,} more notes shared by several rows")
    return lines


def _state(status: JobStatus | None) -> str:
    return status.state if status is not None else PENDING


def counts_table(tags: list[str], statuses: dict[str, JobStatus | None], types: dict[str, str],
                 styles: dict[str, str]) -> Table:
    """Rows per instance type (lines) and state (columns), with a total line when there are several types."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for tag in tags:
        counts[types.get(tag, "")][_state(statuses.get(tag))] += 1
    states = [s for s in STATE_ORDER if any(c[s] for c in counts.values())]
    states += sorted({s for c in counts.values() for s in c} - set(states))
    table = Table(title="rows by type and state", title_justify="left")
    table.add_column("type", no_wrap=True)
    table.add_column("rows", justify="right", no_wrap=True)
    for state in states:
        table.add_column(Text(state, style=styles.get(state, "")), justify="right", no_wrap=True)
    for instance_type in sorted(counts):
        line = counts[instance_type]
        table.add_row(instance_type or "-", f"{sum(line.values()):,}", *[f"{line[s]:,}" if line[s] else "" for s in states])
    if len(counts) > 1:
        total = sum(counts.values(), Counter())
        table.add_row("all", f"{len(tags):,}", *[f"{total[s]:,}" if total[s] else "" for s in states])
    return table


def failure_lines(tags: list[str], statuses: dict[str, JobStatus | None]) -> list[str]:
    """Failed and interrupted rows grouped by reason (the first line of their note), most frequent first."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for tag in tags:
        status = statuses.get(tag)
        if status is not None and status.state in (FAILED, INTERRUPTED):
            groups[(status.state, _first_line(status.note) or "(no note)")].append(tag)
    if not groups:
        return []
    failed = sum(len(found) for found in groups.values())
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    lines = [f"{failed:,} rows failed or were interrupted, by reason:"]
    for (state, reason), found in ordered[:REASONS]:
        lines.append(f"  {len(found):,} {state}: {reason} (e.g. {', '.join(found[:EXAMPLES])})")
    if len(ordered) > REASONS:
        rest = ordered[REASONS:]
        lines.append(f"  … {sum(len(f) for _, f in rest):,} more rows with {len(rest):,} other reasons")
    return lines


def running_table(running: list[JobStatus]) -> Table:
    table = Table(title=f"running ({len(running):,})", title_justify="left")
    for column in ("tag", "try", "machine", "slot", "for", "beat"):
        table.add_column(column, no_wrap=True)
    for status in running[:RUNNING_SHOWN]:
        since = f"{seconds_since(status.started):.0f}s" if status.started else ""
        table.add_row(status.tag, str(status.attempt), status.instance_id,
                      "" if status.slot is None or status.slot < 0 else str(status.slot), since,
                      "" if status.heartbeat_age is None else f"{status.heartbeat_age:.0f}s")
    if len(running) > RUNNING_SHOWN:
        table.add_row(f"… {len(running) - RUNNING_SHOWN:,} more", "", "", "", "", "")
    return table


def print_summary(console: Console, job: str, tags: list[str], statuses: dict[str, JobStatus | None],
                  types: dict[str, str], styles: dict[str, str], hint: str) -> None:
    """The summary of a campaign too long to list, ending with how to see every row (``hint``)."""
    states = Counter(_state(statuses.get(t)) for t in tags)
    said = ", ".join(f"{states[s]:,} {s}" for s in STATE_ORDER if states[s])
    console.print(f"job {job}: {len(tags):,} rows: {said}", markup=False, highlight=False)
    console.print(counts_table(tags, statuses, types, styles))
    for line in failure_lines(tags, statuses):
        console.print(line, markup=False, highlight=False)
    running = [s for t in tags if (s := statuses.get(t)) is not None and s.state == RUNNING]
    if running:
        console.print(running_table(running))
    lines = shared_lines(shared_notes(tags, statuses, reasons_apart=True), limit=REASONS)
    if lines:
        console.print("notes shared by several rows:", markup=False, highlight=False)
        for line in lines:
            console.print(f"  {line}", markup=False, highlight=False)
    console.print(hint, markup=False, highlight=False)
