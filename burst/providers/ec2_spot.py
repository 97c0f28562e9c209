"""Spot machines on EC2: the market options, what AWS answers when it has none, and what burst does then.

``--spot`` asks for one-time spot machines that AWS terminates on interruption
(the worker sees the notice and gives its rows back; see ``burst.node.spot_notice``).
When AWS refuses spot machines (no capacity, price, count), ``--spot`` launches
those on-demand and says so; ``--spot-only`` launches none this round and asks
again later, with growing pauses, saying so each time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

# one-time spot requests, ended (never stopped or hibernated) on interruption: the rows run elsewhere
SPOT_MARKET_OPTIONS = {"MarketType": "spot",
                       "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}}
SPOT_REFUSALS = frozenset({"InsufficientInstanceCapacity", "SpotMaxPriceTooLow", "MaxSpotInstanceCountExceeded"})
SPOT_WAIT_DELAYS = (30.0, 60.0, 120.0, 300.0)  # --spot-only: ask again after these, then every 5 minutes


class SpotRefused(Exception):
    """AWS refused spot machines (capacity, price or count).

    ``instances``: what the refused RunInstances round did start (a partial fill, kept);
    ``launched``: the ids of every machine this launch started (earlier batches included).
    """

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code
        self.instances: list[dict[str, Any]] = []
        self.launched: list[str] = []


@dataclass
class SpotWait:
    """``--spot-only``: how often spot capacity was refused for a type, and when to ask again."""

    tries: int = 0
    next_try: float = 0.0

    def next_delay(self) -> float:
        delay = SPOT_WAIT_DELAYS[min(self.tries, len(SPOT_WAIT_DELAYS) - 1)]
        self.tries += 1
        self.next_try = time.monotonic() + delay
        return delay


def launch_spot(provider: Any, params: dict[str, Any], count: int) -> list[str]:
    """Spot machines; when AWS refuses them, on-demand ones (``--spot``) or none this round (``--spot-only``)."""
    kind = params["InstanceType"]
    wait = provider.spot_waits.get(kind)
    if wait is not None and time.monotonic() < wait.next_try:
        return []
    try:
        ids = provider.launch_batches(dict(params, InstanceMarketOptions=SPOT_MARKET_OPTIONS), count, spot=True)
    except SpotRefused as refused:
        rest = count - len(refused.launched)
        if provider.options.market == "spot-only":
            wait = provider.spot_waits.setdefault(kind, SpotWait())
            delay = wait.next_delay()
            provider.report(f"waiting for spot capacity for {rest} × {kind} ({refused.code}; try {wait.tries}, "
                         f"next in {delay:.0f} s; --spot-only)")
            return refused.launched
        provider.report(f"no spot capacity for {rest} × {kind} ({refused.code}): launching them on-demand")
        return refused.launched + provider.launch_batches(params, rest)
    provider.spot_waits.pop(kind, None)
    return ids
