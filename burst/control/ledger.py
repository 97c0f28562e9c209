"""What a campaign cost: each row, each machine, each instance type.

A row's cost is its command's wall time x its machine's price per hour / the
machine's slots (the worker writes it into the row's status as ``cost_usd``).
A machine costs its price from launch to end; what its rows do not account for
(boot, INSTALL.sh, idle slots, attempts that were interrupted) is the
campaign's overhead. So rows + overhead = what the machines cost, and the rows'
part is exactly the sum of ``cost_usd`` in the merged table.

An estimate: the price is the one at launch (a spot price moves), and EBS
volumes, S3 requests and data transfer are left out.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

from rich.table import Table

from burst.control.decide import World
from burst.records import JobStatus, machine_end, seconds_since


@dataclass
class MachineCost:
    id: str
    instance_type: str
    lifecycle: str
    price_per_hour: float | None  # None: unknown, so its cost is left out of the totals
    launched: str
    ended: str  # "" while it runs
    hours: float
    rows_usd: float  # the cost_usd of the rows it ran (current attempts)
    rows: int

    @property
    def machine_usd(self) -> float | None:
        return None if self.price_per_hour is None else self.hours * self.price_per_hour

    @property
    def overhead_usd(self) -> float:
        return 0.0 if self.machine_usd is None else max(0.0, self.machine_usd - self.rows_usd)


@dataclass
class Ledger:
    machines: list[MachineCost] = field(default_factory=list)
    rows_usd: float = 0.0  # every row's cost_usd
    rows_priced: int = 0  # rows with a cost

    @property
    def overhead_usd(self) -> float:
        return sum(m.overhead_usd for m in self.machines)

    @property
    def total_usd(self) -> float:
        return self.rows_usd + self.overhead_usd

    @property
    def unpriced(self) -> list[str]:
        return [m.id for m in self.machines if m.price_per_hour is None]


def make_ledger(world: World, rows: dict[str, JobStatus], now: float | None = None) -> Ledger:
    now = time.time() if now is None else now
    ledger = Ledger()
    per_machine: dict[str, list[float]] = defaultdict(list)
    for status in rows.values():
        if status is not None and status.cost_usd is not None:
            ledger.rows_usd += status.cost_usd
            ledger.rows_priced += 1
            per_machine[status.instance_id].append(status.cost_usd)
    live = {m.id for m in world.live}
    for instance_id, record in sorted(world.bucket.machines.items()):
        ended, end = machine_end(record, world.bucket.workers.get(instance_id), instance_id in live, now)
        started = now - seconds_since(record.launched, now)
        ledger.machines.append(MachineCost(
            id=instance_id, instance_type=record.instance_type, lifecycle=record.lifecycle,
            price_per_hour=record.price_per_hour, launched=record.launched, ended=ended,
            hours=max(0.0, end - started) / 3600, rows_usd=sum(per_machine[instance_id]),
            rows=len(per_machine[instance_id])))
    return ledger


def money(value: float | None, unknown: str = "unknown") -> str:
    """Dollars as people read them: cents for dollars, 4 decimals below one, 3 digits for a few seconds' worth."""
    if value is None:
        return unknown
    if value == 0:
        return "$0"
    if abs(value) < 0.0001:  # a test or a demo: a few seconds of a cheap machine
        return f"${value:.3g}"
    return f"${value:.4f}" if abs(value) < 1 else f"${value:,.2f}"


def cost_line(ledger: Ledger) -> str:
    line = (f"cost so far: rows {money(ledger.rows_usd)}, overhead {money(ledger.overhead_usd)}, "
            f"total {money(ledger.total_usd)}")
    if ledger.unpriced:
        line += f" (without {len(ledger.unpriced)} machine(s) of unknown price)"
    return line


def cost_by_type(ledger: Ledger) -> Table:
    table = Table(title="cost per instance type", title_justify="left")
    for column in ("type", "machines", "hours", "rows", "rows $", "overhead $", "total $"):
        table.add_column(column, justify="left" if column == "type" else "right", no_wrap=True)
    groups: dict[str, list[MachineCost]] = defaultdict(list)
    for machine in ledger.machines:
        groups[machine.instance_type].append(machine)
    for kind, machines in sorted(groups.items()):
        rows_usd = sum(m.rows_usd for m in machines)
        overhead = sum(m.overhead_usd for m in machines)
        table.add_row(kind, str(len(machines)), f"{sum(m.hours for m in machines):.2f}", str(sum(m.rows for m in machines)),
                      money(rows_usd), money(overhead), money(rows_usd + overhead))
    table.add_section()
    table.add_row("total", str(len(ledger.machines)), f"{sum(m.hours for m in ledger.machines):.2f}",
                  str(ledger.rows_priced), money(ledger.rows_usd), money(ledger.overhead_usd), money(ledger.total_usd))
    return table


def cost_by_machine(ledger: Ledger) -> Table:
    table = Table(title="cost per machine", title_justify="left")
    for column in ("machine", "type", "$/h", "hours", "rows", "cost", "overhead"):
        table.add_column(column, justify="left" if column in ("machine", "type") else "right", no_wrap=True)
    for m in ledger.machines:
        table.add_row(m.id, f"{m.instance_type} {m.lifecycle or '?'}", money(m.price_per_hour),
                      f"{m.hours:.2f}" + ("" if m.ended else "+"), str(m.rows), money(m.machine_usd),
                      money(m.overhead_usd if m.price_per_hour is not None else None))
    if any(not m.ended for m in ledger.machines):
        table.caption = "+ still running"
    return table
