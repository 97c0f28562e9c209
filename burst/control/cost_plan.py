"""The plan shown before any money is spent: machines and slots per type, prices, and the worst case.

``--dry-run`` prints it and stops; on EC2 a real run prints it and asks
``Proceed? [y/N]`` (``--yes`` answers for scripts; with no terminal and no
``--yes`` the run is refused before anything is created).
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from rich.table import Table

from burst.control.ledger import money
from burst.errors import UserError
from burst.providers.pricing import LOCAL, ON_DEMAND, SPOT, PriceBook
from burst.providers.quotas import QuotaNeed, quota_class

SPOT_MARKETS = ("spot", "spot-only")


@dataclass
class TypePlan:
    """One instance type of the campaign: its rows, its pool and what one machine costs."""

    instance_type: str
    rows: int
    machines: int
    slots: int
    vcpus: int | None
    lifecycle: str  # what is asked for: on-demand | spot | local
    price_per_hour: float | None  # one machine, at the asked lifecycle (spot: the zones' highest)
    worst_price_per_hour: float | None  # what a machine may cost (spot with fallback: on-demand too)
    cores: int | None = None  # physical cores of one machine, where known: each slot gets whole ones

    @property
    def fleet_per_hour(self) -> float | None:
        return None if self.price_per_hour is None else self.machines * self.price_per_hour


@dataclass
class CampaignPlan:
    job: str
    where: str  # "local" or the EC2 region
    market: str  # on-demand | spot | spot-only | local
    max_hours: float
    types: list[TypePlan]
    book: PriceBook  # the prices the plan used, kept for each machine's record
    notes: list[str] = field(default_factory=list)  # unknown prices, quotas not read, quota warnings

    @property
    def machines(self) -> int:
        return sum(t.machines for t in self.types)

    @property
    def fleet_per_hour(self) -> float | None:
        prices = [t.fleet_per_hour for t in self.types]
        return None if any(p is None for p in prices) else sum(prices)  # type: ignore[arg-type]

    @property
    def worst_case(self) -> float | None:
        """Every machine running for ``--max-hours``, at the highest price it may be charged."""
        prices = [t.worst_price_per_hour for t in self.types]
        if any(p is None for p in prices):
            return None
        return sum(t.machines * t.worst_price_per_hour * self.max_hours for t in self.types)  # type: ignore[operator]


def make_plan(job: str, where: str, market: str, max_hours: float, rows_per_type: dict[str, int],
              machines_per_type: dict[str, int], slots: str, vcpus: dict[str, int], book: PriceBook,
              cores: dict[str, int] | None = None) -> CampaignPlan:
    """``cores``: physical cores per type (``--slots auto`` is one slot per core; more slots than cores
    is refused on EC2, where it would make every timing share a core, and a note locally)."""
    types = []
    notes = list(book.notes)
    for instance_type in sorted(rows_per_type):
        cpus = vcpus.get(instance_type)
        physical = (cores or {}).get(instance_type)
        per_machine = (physical or cpus or 1) if slots == "auto" else int(slots)
        if physical and per_machine > physical:
            shared = (f"--slots {per_machine} on {instance_type}: a machine has {physical} physical core"
                      f"{'s' if physical > 1 else ''}, so slots would share cores and disturb each other's timings")
            if market != LOCAL:
                raise UserError(f"{shared}. Use --slots {physical} or fewer (or --slots auto: one per core).")
            notes.append(shared)
        if market == LOCAL:
            lifecycle, price, worst = LOCAL, 0.0, 0.0
        elif market in SPOT_MARKETS:
            lifecycle = SPOT
            price = book.price(instance_type, SPOT)
            on_demand = book.price(instance_type, ON_DEMAND)
            if market == "spot-only":
                worst = price
            else:  # a refused spot request falls back to on-demand
                worst = None if price is None or on_demand is None else max(price, on_demand)
        else:
            lifecycle = ON_DEMAND
            price = worst = book.price(instance_type, ON_DEMAND)
        types.append(TypePlan(instance_type, rows_per_type[instance_type], machines_per_type[instance_type],
                              per_machine, cpus, lifecycle, price, worst, physical))
    return CampaignPlan(job, where, market, max_hours, types, book, notes=notes)


def quota_needs(plan: CampaignPlan) -> list[QuotaNeed]:
    """vCPUs of the whole fleet per quota class (spot fleets count against both: they may fall back)."""
    needs: Counter[tuple[str, bool]] = Counter()
    for kind in plan.types:
        quota = quota_class(kind.instance_type)
        if quota is None or kind.vcpus is None:
            continue
        if plan.market in SPOT_MARKETS:
            needs[(quota, True)] += kind.machines * kind.vcpus
        if plan.market != "spot-only":
            needs[(quota, False)] += kind.machines * kind.vcpus
    return [QuotaNeed(q, spot, n) for (q, spot), n in sorted(needs.items())]


def _money(value: float | None) -> str:
    return money(value, unknown="price unknown")


def plan_table(plan: CampaignPlan) -> Table:
    where = "this machine (sandboxes)" if plan.market == LOCAL else f"EC2 {plan.where}, {plan.market}"
    table = Table(title=f"plan for job {plan.job}: {where}", title_justify="left")
    for column in ("type", "rows", "machines", "slots", "cores", "vCPUs", "$/h per machine", "$/h fleet"):
        table.add_column(column, no_wrap=True, justify="left" if column == "type" else "right")
    for kind in plan.types:
        table.add_row(kind.instance_type, str(kind.rows), str(kind.machines), str(kind.slots), str(kind.cores or ""),
                      str(kind.vcpus or ""), _money(kind.price_per_hour), _money(kind.fleet_per_hour))
    table.add_section()
    table.add_row("total", str(sum(t.rows for t in plan.types)), str(plan.machines), "", "", "", "",
                  _money(plan.fleet_per_hour))
    return table


def plan_summary(plan: CampaignPlan) -> list[str]:
    """The lines below the table: the worst case, and every note."""
    if plan.market == LOCAL:
        lines = ["local sandboxes cost nothing beyond this machine"]
    else:
        lines = [f"worst case: {_money(plan.worst_case)} (every machine running for --max-hours {plan.max_hours:g}"
                 + (", at the on-demand price if spot is refused" if plan.market == "spot" else "") + ")"]
    return lines + [f"note: {note}" for note in plan.notes]


def confirm(plan: CampaignPlan, yes: bool, ask: Callable[[str], str] = input) -> bool:
    """On EC2: True to go on. Refuses (UserError, nothing created) with no terminal to ask on."""
    if yes or plan.market == LOCAL:
        return True
    if not sys.stdin.isatty():
        raise UserError("this run starts EC2 machines that cost money, and there is no terminal to ask on: "
                        "check the plan above (or with --dry-run), then add --yes to proceed.")
    try:
        answer = ask("Proceed? [y/N] ")
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")
