"""``burst list`` (and ``burst status`` without a job): every campaign started from this machine.

Campaigns are the records under ``$BURST_HOME/campaigns``. Each one's state is
read, never changed (no reconcile): its rows from its bucket and its live
machines from its provider. A campaign that cannot be read (no AWS credentials
now, a bucket deleted by hand) is listed all the same, with why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from burst.cli.tables import count_states
from burst.control.campaign import Campaign
from burst.control.campaign_record import CampaignRecord, record_path
from burst.protocol import DONE, TERMINAL_STATES
from burst.records import seconds_since


@dataclass
class CampaignLine:
    job: str
    where: str  # "local", or the AMI and region
    rows: int
    state: str  # done, failed, running, stopped, or "unknown"
    detail: str  # rows per state, live machines, or why it could not be read
    created: str
    updated: str


def age(iso: str) -> str:
    """``45s``, ``12m``, ``3h``, ``2d`` since ``iso``."""
    seconds = max(0, int(seconds_since(iso)))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _state(record: CampaignRecord) -> tuple[str, str]:
    provider = record.provider()
    try:
        campaign = Campaign(record, provider, record.storage(provider), report=lambda _: None)
        try:
            world = campaign.fleet.observe()
            rows = campaign.rows(world)
        finally:
            campaign.fleet.close()
    except Exception as error:  # noqa: BLE001 - one unreadable campaign is one line, not the listing's end
        first = str(error).splitlines()[0] if str(error) else ""
        return "unknown", f"not readable now ({type(error).__name__}: {first})"
    finally:
        provider.close()
    live = len(world.live)
    counts = count_states(rows)
    if all(s.state in TERMINAL_STATES for s in rows.values()):
        state = DONE if all(s.state == DONE for s in rows.values()) else "failed"
    else:
        state = "running" if live else "stopped"
    noun = "sandbox" if record.image == "local" else "machine"
    machines = f"; {live} {noun}{'es' if noun == 'sandbox' else 's'} live" if live != 1 else f"; 1 {noun} live"
    return state, counts + (machines if live else "")


def campaigns() -> list[CampaignLine]:
    """Every campaign recorded here, the most recently run first."""
    folder = record_path("x").parent
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = CampaignRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError) as error:
            found.append(CampaignLine(path.stem, "?", 0, "unknown", f"unreadable record {path}: {error}", "", ""))
            continue
        where = "local" if record.image == "local" else f"{record.image} {record.options.region or ''}".strip()
        state, detail = _state(record)
        found.append(CampaignLine(record.job, where, len(record.jobs), state, detail, record.created, record.updated))
    return sorted(found, key=lambda line: line.updated, reverse=True)


def print_campaigns(console: Console, lines: list[CampaignLine], command: str) -> None:
    if not lines:
        console.print(f"no campaigns on this machine yet ({record_path('x').parent}): start one with "
                      f"`{command} run local demo awsjobs/demo.csv -c -d --wait`", markup=False, soft_wrap=True)
        return
    table = Table(title="campaigns", title_justify="left")
    for column in ("job", "where", "rows", "state", "started", "last run", "detail"):
        table.add_column(column, no_wrap=column != "detail", overflow="fold")
    for line in lines:
        table.add_row(line.job, line.where, str(line.rows), line.state,
                      f"{age(line.created)} ago" if line.created else "",
                      f"{age(line.updated)} ago" if line.updated else "", line.detail)
    console.print(table)
    console.print(f"details of one: {command} status JOB", markup=False, soft_wrap=True)
