"""What a person watches while a campaign runs, and what they read when it ends.

During setup, a live line per machine (its state and how long since launch,
which covers an EC2 boot and INSTALL.sh); during ``--wait``, the running rows
(how long they run, their heartbeat) — both redrawn in place on a terminal and
left out of pipes. A row that fails is printed the moment it is seen. At the
end, one summary line and the next steps.
"""

from __future__ import annotations

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from burst.cli.console import command_name, counted, plural
from burst.cli.tables import STATE_STYLE, count_states, headline
from burst.protocol import DONE, FAILED, INTERRUPTED, RUNNING, UNKNOWN
from burst.records import JobStatus, seconds_since

SETTING_UP = ("launched", "installing", "ready")
FAILURES_SAID = 20  # failures printed as they come; the rest are counted in the live line and grouped at the end


def _elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class LiveProgress:
    """``update(rows, machines)`` each round (``Campaign.run``'s ``on_round``)."""

    def __init__(self, console: Console, job: str, local: bool):
        self.console = console
        self.job = job
        self.noun = "sandbox" if local else "machine"
        self.reported: set[tuple[str, int]] = set()  # (tag, attempt) whose failure was printed
        self.live = Live(console=console, transient=True, refresh_per_second=4, redirect_stdout=False)

    def __enter__(self) -> "LiveProgress":
        self.live.start()
        return self

    def __exit__(self, *exc) -> None:
        self.live.stop()

    def update(self, rows: dict[str, JobStatus], machines: list[dict]) -> None:
        for tag, status in rows.items():
            if status.terminal and status.state != DONE and (tag, status.attempt) not in self.reported:
                self.reported.add((tag, status.attempt))
                if len(self.reported) > FAILURES_SAID:
                    if len(self.reported) == FAILURES_SAID + 1:
                        self.console.print("more rows failed: the view at the end groups them by reason",
                                           markup=False, highlight=False)
                    continue
                note = headline(status.note or "")
                self.console.print(Text(f"{tag} {status.state}" + (f": {note}" if note else ""),
                                        style=STATE_STYLE.get(status.state, "")))
        self.live.update(self.render(rows, machines))

    def render(self, rows: dict[str, JobStatus], machines: list[dict]) -> Group:
        final = sum(1 for s in rows.values() if s.terminal)
        parts: list = [Text(f"{self.job}: {final}/{len(rows)} rows final ({count_states(rows)})")]
        setting_up = [m for m in machines if m["live"] and m["state"] in SETTING_UP]
        if setting_up:
            table = Table(title=f"{plural(self.noun)} being set up", title_justify="left", box=None, pad_edge=False)
            for column in (self.noun, "type", "state", "since launch"):
                table.add_column(column, no_wrap=True)
            for machine in setting_up:
                table.add_row(machine["id"], machine["instance_type"], machine["state"],
                              _elapsed(seconds_since(machine["launched"])) if machine.get("launched") else "")
            parts.append(table)
        running = [s for s in rows.values() if s.state == RUNNING]
        if running:
            table = Table(title="running", title_justify="left", box=None, pad_edge=False)
            for column in ("tag", "try", self.noun, "for", "beat"):
                table.add_column(column, no_wrap=True)
            for status in running[:20]:
                table.add_row(status.tag, str(status.attempt), status.instance_id,
                              _elapsed(seconds_since(status.started)) if status.started else "",
                              "" if status.heartbeat_age is None else f"{status.heartbeat_age:.0f}s")
            if len(running) > 20:
                table.add_row(f"… {len(running) - 20} more", "", "", "", "")
            parts.append(table)
        return Group(*parts)


def summary(job: str, tags: list[str], rows: dict[str, JobStatus], seconds: float, cost: str) -> list[str]:
    """One summary line, then the next steps: the first failure's logs, and the download."""
    counts = count_states({t: rows.get(t) for t in tags})
    lines = [f"{job}: {counted(len(tags), 'row')} in {_elapsed(seconds)}: {counts}; {cost}"]
    failed = [t for t in tags if (s := rows.get(t)) is not None and s.state in (FAILED, INTERRUPTED, UNKNOWN)]
    if failed:
        lines.append(f"why {failed[0]} {rows[failed[0]].state}: {command_name()} logs {job} {failed[0]}")
    lines.append(f"results: {command_name()} download {job} results/{job} --merge")
    return lines
