"""The order in which a worker tries its candidate rows: its own arc of a ring all workers share.

Every worker sorts its candidates by a hash of the tag (the same on every machine
and Python) and walks them from a random start, so workers walk different arcs and
rarely race for one row. A lost race means another worker's arc begins there: the
walk jumps to a random start again. The bucket is listed again only when the
candidates are used up, or after ``losses_before_listing`` lost races in a row
(then the listing is stale: most of its rows are taken). With a shuffle and a new
listing after two lost races, the last rows of a campaign cost a listing each.
Standard library only: the worker uses it.
"""

from __future__ import annotations

import random
import zlib
from typing import TypeVar

Candidate = TypeVar("Candidate", bound=tuple)

LOSSES_BEFORE_LISTING = 4  # lost races in a row (each followed by a jump) that mean a stale listing, at least


def losses_before_listing(rows: int) -> int:
    """Lost races in a row that send a worker of ``rows`` rows to list again: what the listing costs.

    A listing of ``state/rows/`` is a page of 1,000 keys per 500 rows (a claim and a status
    each), and on 100,000 rows about 2 s of a local worker's CPU, during which its slots claim
    nothing; a lost race is one refused write. So a worker tries as many candidates as the
    listing would cost requests before it lists again (at least ``LOSSES_BEFORE_LISTING``):
    near a campaign's end, where most of an old listing is taken, it no longer lists after
    every four losses.
    """
    return max(LOSSES_BEFORE_LISTING, 2 * rows // 1000)


def ring_position(tag: str) -> int:
    return zlib.crc32(tag.encode("utf-8"))


def in_ring_order(candidates: list[Candidate]) -> list[Candidate]:
    """``(tag, ...)`` candidates as a queue popped from its end: the last one first, in ring order."""
    return sorted(candidates, key=lambda candidate: -ring_position(candidate[0]))


def from_random_start(queue: list[Candidate]) -> list[Candidate]:
    """The queue rotated so that its next item (its last) is a random one, the ring's order kept."""
    if len(queue) < 2:
        return queue
    start = random.randrange(len(queue))
    return queue[start + 1:] + queue[:start + 1]
