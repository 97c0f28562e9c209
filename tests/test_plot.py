"""``burst plot``: the timeline of a campaign, gathered from its bucket and drawn as a PNG."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np

from burst import protocol
from burst.control.campaign import Campaign
from burst.control.campaign_record import load_record
from burst.records import Claim, JobStatus, MachineRecord, WorkerRecord, iso_utc
from burst.results.plot import STATE_COLOURS, _lane_label, draw_timeline, figure_size, plot_campaign
from burst.results.timeline import campaign_timeline, gather_timeline
from burst.storage import open_storage
from tests.conftest import REPO, run_script, status_report

DISPATCHER = str(REPO / "dispatcher.py")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def pixels(path) -> np.ndarray:
    """The picture as (height, width, RGB) bytes."""
    from matplotlib.image import imread

    image = imread(path)
    return np.round(image[..., :3] * 255).astype(np.uint8)


def has_colour(image: np.ndarray, hex_colour: str, at_least: int = 400) -> bool:
    """More pixels of this colour than its legend's patch has (~150)."""
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
    close = np.all(np.abs(image.astype(np.int16) - rgb) <= 2, axis=-1)
    return int(close.sum()) >= at_least


def distinct_colours(image: np.ndarray) -> int:
    return len(np.unique(image.reshape(-1, 3), axis=0))


def test_demo_campaign_as_a_timeline(tmp_path, burst_home):
    result = run_script(DISPATCHER, "local", "demo", "awsjobs/demo.csv", "-c", "-d", "--wait")
    assert result.returncode == 1, result.stderr  # the demo's last row fails on purpose
    drawn = burst_home / "campaigns" / "demo-timeline.png"
    assert f"timeline of demo: {drawn}" in result.stdout.replace("\n", ""), "--wait ends with the picture's path"
    default = run_script("-m", "burst", "plot", "demo")
    assert default.returncode == 0 and f"timeline of demo: {drawn}" in default.stdout.replace("\n", ""), \
        "burst plot writes where --wait does, and says the same"
    assert drawn.read_bytes().startswith(PNG_MAGIC)
    asked = run_script("-m", "burst", "plot", "demo", "-o", str(tmp_path / "asked.png"))
    assert asked.returncode == 0 and f"timeline of demo: {tmp_path / 'asked.png'}" in asked.stdout.replace("\n", "")
    assert (tmp_path / "asked.png").read_bytes().startswith(PNG_MAGIC)
    report = status_report("demo")
    record = load_record("demo")  # BURST_HOME is the test's (conftest)
    campaign = Campaign(record, record.provider(), record.storage(), report=lambda _: None)
    try:
        timeline = campaign_timeline(campaign)
        picture = plot_campaign(campaign, tmp_path / "plots" / "demo.png", width=1000, height=420)
    finally:
        campaign.fleet.close()

    assert sorted(lane.id for lane in timeline.lanes) == sorted(m["id"] for m in report["machines"])
    rows = {row["tag"]: row for row in report["rows"]}
    bars = {(bar.tag, bar.attempt): bar for bar in timeline.bars}
    assert len(bars) == len(timeline.bars) == len(rows), "one bar per attempt, every row ran once"
    for tag, row in rows.items():
        bar = bars[(tag, 1)]
        assert (bar.state, bar.machine, bar.slot) == (row["state"], row["instance_id"], row["slot"])
        assert bar.start <= bar.end and not bar.estimated
    assert bars[("demo4", 1)].state == "failed" and bars[("demo4", 1)].exit_code == 2
    assert dict(timeline.rows) == {"done": 4, "failed": 1}
    for lane in timeline.lanes:
        assert lane.launched <= lane.boot(timeline.now)[1] <= lane.ready <= min(b.start for b in lane.bars)
        assert lane.end is not None and lane.end >= max(b.end for b in lane.bars)
        assert lane.end_reason == "finished", "each machine ended itself once no row was left"
    assert 0 < timeline.span < 60

    data = picture.read_bytes()
    assert data.startswith(PNG_MAGIC)
    image = pixels(picture)
    assert image.shape[:2] == (420, 1000)
    assert distinct_colours(image) > 50, "not blank"
    assert has_colour(image, STATE_COLOURS["done"]) and has_colour(image, STATE_COLOURS["failed"])
    assert not has_colour(image, STATE_COLOURS["interrupted"]), "only the legend's patch"


# -- a bucket written by hand: retries, a lost machine, a running row, a failed install -------------------

T0 = 1_750_000_000.0


def at(seconds: float) -> str:
    return iso_utc(T0 + seconds)


def write(storage, key: str, record) -> None:
    storage.write_text(key, json.dumps(dataclasses.asdict(record)) + "\n")


def machine(storage, instance_id: str, phases: dict[str, float], state: str, ended: float | None = None,
            note: str = "", kind: str = "c5.large", lifecycle: str = "spot") -> None:
    write(storage, protocol.machine_key(instance_id), MachineRecord(
        id=instance_id, instance_type=kind, state=state, launched=at(phases["launched"]), updated=at(max(phases.values())),
        note=note, lifecycle=lifecycle, ended=at(ended) if ended is not None else "",
        phases={name: at(when) for name, when in phases.items()}))


def worker(storage, instance_id: str, state: str, started: float, last_word: float, rows: list[str],
           slots: int = 1, running: list[str] | None = None) -> None:
    write(storage, protocol.worker_key(instance_id), WorkerRecord(
        id=instance_id, instance_type="c5.large", slots=slots, state=state, started=at(started),
        heartbeat=at(last_word), rows=rows, running=running or []))
    path = storage.root / protocol.worker_key(instance_id)
    os.utime(path, (T0 + last_word, T0 + last_word))  # the object's last write: the worker's last word


def status(storage, tag: str, attempt: int, state: str, instance_id: str, slot: int | None,
           started: float | None, ended: float | None, note: str = "", current: bool = True,
           updated: float | None = None) -> None:
    record = JobStatus(job="hand", tag=tag, state=state, instance_type="c5.large", instance_id=instance_id,
                       attempt=attempt, slot=slot, started=at(started) if started is not None else None,
                       ended=at(ended) if ended is not None else None, note=note,
                       updated=at(updated if updated is not None else (ended or 0)),
                       exit_code=None if state == protocol.INTERRUPTED else (0 if state == protocol.DONE else 1))
    write(storage, protocol.attempt_prefix(tag, attempt) + "status.json", record)
    if current:
        write(storage, protocol.status_key(tag), record)


def hand_made_bucket(tmp_path):
    """Four machines and four rows.

    * ``i-spot`` (spot, 2 slots): runs r0 attempt 1 and r1 attempt 1, then a spot interruption:
      r0's worker gave it back (interrupted, with times); r1 was lost with the machine
      (the dispatcher wrote its status when it saw the machine gone: no times).
    * ``i-two`` (2 slots): r0 attempt 2 done on slot 0; r1 attempt 2 done on slot 1; r2 running on slot 0.
    * ``i-bad``: INSTALL.sh failed; the dispatcher ended it.
    * r3 failed without running: its type could not install.
    """
    storage = open_storage((tmp_path / "bucket").as_uri())
    machine(storage, "i-spot", {"launched": 0, "installing": 40, "working": 100}, protocol.WORKING)
    worker(storage, "i-spot", "interrupted", started=101, last_word=400, rows=["r0#1"], slots=2, running=["r1#1"])
    status(storage, "r0", 1, protocol.INTERRUPTED, "i-spot", 0, 110, 395, note=protocol.SPOT_INTERRUPTION, current=False)
    status(storage, "r1", 1, protocol.INTERRUPTED, "i-spot", 1, None, None, note="its machine is gone", current=False,
           updated=420)
    machine(storage, "i-two", {"launched": 5, "installing": 50, "ready": 120, "working": 125}, protocol.WORKING,
            lifecycle="on-demand")
    worker(storage, "i-two", "working", started=126, last_word=900, rows=["r0#2", "r1#2"], slots=2, running=["r2#1"])
    status(storage, "r0", 2, protocol.DONE, "i-two", 0, 450, 700)
    status(storage, "r1", 2, protocol.DONE, "i-two", 1, 460, 650)
    write(storage, protocol.claim_key("r2"), Claim(tag="r2", attempt=1, machine="i-two", slot=0, claimed=at(710),
                                                   heartbeat=at(890)))
    machine(storage, "i-bad", {"launched": 10, "installing": 60, "install-failed": 200, "ended": 210}, protocol.ENDED,
            ended=200, note="INSTALL.sh failed on it: exit status 3\nlibfoo not found", kind="m5.large")
    status(storage, "r3", 1, protocol.FAILED, "", None, None, None, note="INSTALL.sh failed on 1 machine(s)")
    return storage


def test_a_retried_row_shows_both_attempts_and_the_lost_machine_is_guessed(tmp_path):
    storage = hand_made_bucket(tmp_path)
    now = T0 + 1000
    timeline = gather_timeline(storage, "hand", ["r0", "r1", "r2", "r3"], live_ids={"i-two"}, now=now)

    assert [lane.id for lane in timeline.lanes] == ["i-spot", "i-two", "i-bad"], "in launch order"
    spot, two, bad = timeline.lanes
    attempts = {(b.tag, b.attempt): b for b in timeline.bars}
    assert set(attempts) == {("r0", 1), ("r1", 1), ("r0", 2), ("r1", 2), ("r2", 1)}
    first, second = attempts[("r0", 1)], attempts[("r0", 2)]
    assert (first.state, first.machine, first.label) == ("interrupted", "i-spot", "r0")
    assert (second.state, second.machine, second.label) == ("done", "i-two", "r0 #2")
    assert first.end <= second.start

    guessed = attempts[("r1", 1)]
    assert guessed.estimated and guessed.state == "interrupted"
    assert guessed.start == spot.ready == T0 + 100, "lost at once: from the machine's ready to ..."
    assert guessed.end == spot.end == T0 + 400, "... the worker's last word (before the dispatcher wrote its status)"
    assert spot.end_reason == protocol.SPOT_INTERRUPTION

    running = attempts[("r2", 1)]
    assert (running.state, running.end, running.slot) == ("running", None, 0)
    assert two.end is None and two.slots == 2 and two.until(now) == now
    assert timeline.live and timeline.end == now
    assert two.ready == T0 + 120, "installed: ready before its worker was seen working"
    assert two.idle(1, now) == [(T0 + 120, T0 + 460), (T0 + 650, now)]

    assert bad.install_failed == T0 + 200 and bad.ready is None and bad.end == T0 + 200
    assert bad.install(now) == (T0 + 60, T0 + 200) and bad.idle(0, now) == []
    assert bad.end_reason == "INSTALL.sh failed on it: exit status 3"
    assert [b.tag for b in timeline.unplaced] == ["r3"], "failed by the dispatcher: no machine ran it"
    assert dict(timeline.rows) == {"done": 2, "running": 1, "failed": 1}

    picture = draw_timeline(timeline, tmp_path / "hand.png")
    image = pixels(picture)
    assert image.shape[:2] == figure_size(timeline)[::-1] and image.shape[1] == 1200
    for state in ("done", "interrupted", "running"):
        assert has_colour(image, STATE_COLOURS[state]), state


def test_a_machine_whose_calibration_is_far_from_its_types_median_is_flagged(tmp_path):
    storage = open_storage((tmp_path / "bucket").as_uri())
    for n, score in enumerate((10.0, 10.5, 8.0, 9.5)):  # the median of c5.large is 9.75; 8 is 18% below it
        machine(storage, f"i-{n}", {"launched": n, "working": 30}, protocol.WORKING, lifecycle="on-demand")
        worker(storage, f"i-{n}", "finished", started=31, last_word=60, rows=[])
        record = json.loads(storage.read_text(protocol.worker_key(f"i-{n}")))
        record["calibration"] = {"score": score}
        storage.write_text(protocol.worker_key(f"i-{n}"), json.dumps(record))
    timeline = gather_timeline(storage, "hand", [], live_ids=set(), now=T0 + 100)
    assert {lane.id: lane.score_off for lane in timeline.lanes} == {"i-0": None, "i-1": None, "i-2": -0.179, "i-3": None}
    assert _lane_label(timeline.lanes[2]) == "i-2  c5.large · score -18% off its type"
    assert _lane_label(timeline.lanes[0]) == "i-0  c5.large"
    assert draw_timeline(timeline, tmp_path / "flagged.png").read_bytes().startswith(PNG_MAGIC)


def test_a_hundred_machines_stay_readable(tmp_path):
    storage = open_storage((tmp_path / "bucket").as_uri())
    for n in range(100):
        name = f"i-{n:03d}"
        machine(storage, name, {"launched": n, "installing": n + 30, "working": n + 90}, protocol.WORKING)
        worker(storage, name, "finished", started=n + 91, last_word=n + 400, rows=[f"r{n}#1"])
        status(storage, f"r{n}", 1, protocol.DONE if n % 7 else protocol.FAILED, name, 0, n + 100, n + 390)
    timeline = gather_timeline(storage, "big", now=T0 + 1000)
    assert len(timeline.lanes) == 100 and len(timeline.bars) == 100
    width, height = figure_size(timeline)
    assert 1500 <= height <= 3000, "some 20 px a machine"
    image = pixels(draw_timeline(timeline, tmp_path / "big.png"))
    assert image.shape[:2] == (height, width)
    assert has_colour(image, STATE_COLOURS["done"]) and has_colour(image, STATE_COLOURS["failed"])


def test_an_empty_bucket_draws_a_picture_that_says_so(tmp_path):
    storage = open_storage((tmp_path / "bucket").as_uri())
    (tmp_path / "bucket").mkdir()
    timeline = gather_timeline(storage, "empty")
    assert timeline.lanes == [] and timeline.span == 0
    assert draw_timeline(timeline, tmp_path / "empty.png").read_bytes().startswith(PNG_MAGIC)


def test_other_commands_do_not_import_matplotlib():
    code = "import sys, burst.results.plot, burst.results.timeline; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0
