"""``burst plot``: a campaign's timeline as a PNG, one lane per machine.

Each machine gets a lane (K sub-lanes for K slots): its boot, its INSTALL.sh,
every attempt it ran (coloured by how it ended, labelled with its tag and
``#n`` for a retry), the time it sat idle, and a tick where it ended, with why.

matplotlib is imported inside ``draw_timeline`` only, so that other commands do
not pay its import time, and through ``Figure`` + ``FigureCanvasAgg`` (no
pyplot): no global state, no display needed.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

from burst import protocol
from burst.results.timeline import MachineLane, RowBar, Timeline, bar_end, campaign_timeline

STATE_COLOURS = {
    protocol.DONE: "#2ca02c",
    protocol.FAILED: "#d62728",
    protocol.INTERRUPTED: "#ff8c1a",
    protocol.RUNNING: "#1f77b4",
}
BOOT = "#c9cfe8"
INSTALL = "#8e7cc3"
INSTALL_FAILED = "#5b2c2c"
IDLE = "#f0f0f0"
IDLE_EDGE = "#c4c4c4"
END = "#222222"
MACHINE_GAP = 0.6  # between machines, in sub-lanes
BAR_HEIGHT = 0.78  # of a sub-lane
DPI = 100
WIDTH_PX = 1200
MAX_HEIGHT_PX = 8000
LEGEND_FONT = 8


def plot_campaign(campaign, path: Path | str, width: int = WIDTH_PX, height: int | None = None) -> Path:
    """Draw the timeline of a ``burst.control.campaign.Campaign`` to ``path`` (PNG); returns the path."""
    return draw_timeline(campaign_timeline(campaign), Path(path), width=width, height=height)


def figure_size(timeline: Timeline, width: int = WIDTH_PX) -> tuple[int, int]:
    """The picture's size in pixels: ``width`` wide, as tall as its lanes need (1 to 100 machines stay readable)."""
    plot_in = _units(timeline) * _inches_per_unit(timeline)
    top, bottom = _margins(timeline, width / DPI)
    return width, min(MAX_HEIGHT_PX, int(round((plot_in + top + bottom) * DPI)))


def draw_timeline(timeline: Timeline, path: Path | str, width: int = WIDTH_PX, height: int | None = None) -> Path:
    """Write ``timeline`` as a PNG of ``width`` x ``height`` pixels (height: ``figure_size``'s by default)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    width, auto_height = figure_size(timeline, width)
    height = height or auto_height
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    top, bottom = _margins(timeline, width / DPI)
    left = min(0.45 * width / DPI, 0.25 + max([len(_lane_label(lane)) for lane in timeline.lanes] or [10]) * 7 * 0.62 / 72)
    figure.subplots_adjust(left=left / (width / DPI), right=1 - 0.25 / (width / DPI),
                           top=1 - min(0.45, top / (height / DPI)), bottom=min(0.45, bottom / (height / DPI)))
    axes = figure.add_subplot(1, 1, 1)
    _Drawing(timeline, axes, figure).draw()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, format="png")
    return path


def _units(timeline: Timeline) -> float:
    """The lanes' height in sub-lanes, gaps included."""
    return sum(lane.slots for lane in timeline.lanes) + MACHINE_GAP * (len(timeline.lanes) + 1) or 2.0


def _inches_per_unit(timeline: Timeline) -> float:
    """Generous for a few lanes, tighter (down to ~14 px a lane) for a hundred."""
    units = _units(timeline)
    return 0.42 if units <= 10 else max(0.14, 0.42 * math.sqrt(10 / units))


def _margins(timeline: Timeline, width_in: float) -> tuple[float, float]:
    """Inches above (title) and below (axis, legend) the lanes."""
    columns = _legend_columns(_legend_entries(timeline), width_in)
    return 0.75, 0.65 + 0.24 * math.ceil(len(_legend_entries(timeline)) / columns)


def _legend_columns(entries: list[tuple[str, dict]], width_in: float) -> int:
    """As many columns as fit across (one row when they all do)."""
    widths = [(LEGEND_FONT * (1.6 + 0.8 + 1.4) + len(label) * LEGEND_FONT * 0.55) / 72 for label, _ in entries]
    for columns in range(len(entries), 1, -1):
        if sum(max(widths[j::columns]) for j in range(columns)) <= 0.95 * width_in:
            return columns
    return 1


def _row_major(items: list, columns: int) -> list:
    """matplotlib fills a legend column by column: order the entries so that they read across."""
    return [items[j + k * columns] for j in range(columns) for k in range(math.ceil(len(items) / columns))
            if j + k * columns < len(items)]


def _legend_entries(timeline: Timeline) -> list[tuple[str, dict]]:
    """(label, patch style) of every kind of mark; the optional ones only when they appear."""
    entries = [("boot", {"facecolor": BOOT}), ("install", {"facecolor": INSTALL})]
    if any(lane.install_failed is not None for lane in timeline.lanes):
        entries.append(("install failed", {"facecolor": INSTALL_FAILED, "hatch": "xx", "edgecolor": "white"}))
    entries += [(state, {"facecolor": colour}) for state, colour in STATE_COLOURS.items()]
    entries.append(("idle", {"facecolor": IDLE, "hatch": "////", "edgecolor": IDLE_EDGE}))
    if any(bar.attempt > 1 for bar in timeline.bars):
        entries.append(("retry (#n)", {"facecolor": "white", "edgecolor": "black", "linewidth": 1.6}))
    if any(bar.estimated for bar in timeline.bars):
        entries.append(("times guessed", {"facecolor": "white", "hatch": "..", "edgecolor": "#777777"}))
    entries.append(("machine end", {}))
    return entries


def _lane_label(lane: MachineLane) -> str:
    kind = lane.instance_type + (" spot" if lane.lifecycle == "spot" else "")
    slots = f" · {lane.slots} slots" if lane.slots > 1 else ""
    off = f" · score {lane.score_off:+.0%} off its type" if lane.score_off is not None else ""  # calibration
    return f"{lane.id}  {kind}{slots}{off}"


def _unit(span: float) -> tuple[float, str]:
    if span < 120:
        return 1.0, "seconds"
    if span < 3 * 3600:
        return 60.0, "minutes"
    return 3600.0, "hours"


def duration(seconds: float) -> str:
    """A span as people say it: 1.2 s, 14 min 3 s, 2 h 05 min."""
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def title_lines(timeline: Timeline) -> tuple[str, str]:
    rows = timeline.rows
    counts = [f"{rows[protocol.DONE]} done", f"{rows[protocol.FAILED]} failed"]
    counts += [f"{rows[s]} {s}" for s in (protocol.INTERRUPTED, protocol.RUNNING, protocol.PENDING) if rows[s]]
    machines = len(timeline.lanes)
    second = (f"{', '.join(counts)} of {sum(rows.values())} rows · {machines} machine{'s' * (machines != 1)} · "
              f"{duration(timeline.span)}" + (" so far" if timeline.live else ""))
    if timeline.unplaced:
        second += f" · {len({b.tag for b in timeline.unplaced})} row(s) failed without running"
    return f"burst campaign {timeline.job}" if timeline.job else "burst campaign", second


class _Drawing:
    """One picture: lanes top to bottom in launch order, x in seconds/minutes/hours since the first launch."""

    def __init__(self, timeline: Timeline, axes, figure):
        self.timeline, self.axes, self.figure = timeline, axes, figure
        self.origin = timeline.start
        self.scale, self.unit = _unit(timeline.span)
        self.rects: dict[tuple, list] = {}  # style -> rectangles, drawn as one collection each
        width_px = figure.get_figwidth() * DPI * axes.get_position().width
        self.x_max = max(timeline.span / self.scale, 1e-3) * 1.16  # room for the end reasons
        self.px_per_x = width_px / self.x_max
        self.font = min(8.0, max(5.0, _inches_per_unit(timeline) * 72 * 0.5))

    def x(self, t: float) -> float:
        return (t - self.origin) / self.scale

    def rect(self, start: float, end: float, y: float, height: float, **style) -> None:
        x0, x1 = self.x(start), self.x(end)
        if x1 - x0 < 1.5 / self.px_per_x:  # at least a visible sliver
            x1 = x0 + 1.5 / self.px_per_x
        key = tuple(sorted(style.items()))
        self.rects.setdefault(key, []).append([(x0, y), (x1, y), (x1, y + height), (x0, y + height)])

    def draw(self) -> None:
        axes, timeline = self.axes, self.timeline
        ticks, labels, y = [], [], MACHINE_GAP
        for lane in timeline.lanes:
            self.lane(lane, y)
            ticks.append(y + lane.slots / 2)
            labels.append(_lane_label(lane))
            y += lane.slots + MACHINE_GAP
        self.flush()
        axes.set_ylim(max(y, 2.0), 0)
        axes.set_xlim(0, self.x_max)
        axes.set_yticks(ticks, labels, fontsize=7 if len(ticks) <= 40 else 6)
        axes.tick_params(axis="y", length=0)
        axes.tick_params(axis="x", labelsize=8)
        for side in ("top", "right", "left"):
            axes.spines[side].set_visible(False)
        axes.grid(axis="x", color="#dddddd", linewidth=0.6)
        axes.set_axisbelow(True)
        first = datetime.fromtimestamp(self.origin, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        axes.set_xlabel(f"{self.unit} since the first launch ({first})", fontsize=8)
        if timeline.live:
            axes.axvline(self.x(timeline.now), color="#1f77b4", linestyle="--", linewidth=0.9)
            axes.text(self.x(timeline.now), 0, " now", color="#1f77b4", fontsize=7, va="bottom")
        if not timeline.lanes:
            axes.text(0.5, 0.5, "no machine has started yet", transform=axes.transAxes, ha="center", color="#777777")
        head, detail = title_lines(timeline)
        self.figure.text(0.01, 1 - 0.12 / self.figure.get_figheight(), head, fontsize=11, fontweight="bold", va="top")
        self.figure.text(0.01, 1 - 0.38 / self.figure.get_figheight(), detail, fontsize=9, va="top", color="#333333")
        self.legend()

    def lane(self, lane: MachineLane, y: float) -> None:
        now, slots = self.timeline.now, lane.slots
        self.rect(*lane.boot(now), y + 0.08, slots - 0.16, facecolor=BOOT)
        install = lane.install(now)
        if install is not None:
            failed = lane.install_failed is not None
            self.rect(*install, y + 0.08, slots - 0.16, facecolor=INSTALL_FAILED if failed else INSTALL,
                      hatch="xx" if failed else "", edgecolor="white" if failed else "none")
        for slot in range(slots):
            for start, end in lane.idle(slot, now):
                self.rect(start, end, y + slot + 0.2, 0.6, facecolor=IDLE, hatch="////", edgecolor=IDLE_EDGE)
        for bar in lane.bars:
            self.bar(bar, lane, y)
        if slots > 1:
            for slot in range(1, slots):
                self.axes.plot([self.x(lane.launched), self.x(lane.until(now))], [y + slot] * 2,
                               color="white", linewidth=0.6, zorder=3)
        if lane.end is not None:
            x = self.x(lane.end)
            self.axes.plot([x, x], [y - 0.12, y + slots + 0.12], color=END, linewidth=1.6, zorder=4,
                           solid_capstyle="butt")
            if lane.end_reason:
                reason = lane.end_reason if len(lane.end_reason) <= 36 else lane.end_reason[:35] + "…"
                self.axes.text(x + 4 / self.px_per_x, y + slots / 2, reason, fontsize=max(5.5, self.font - 1),
                               va="center", ha="left", color="#444444", clip_on=True, zorder=5)

    def bar(self, bar: RowBar, lane: MachineLane, y: float) -> None:
        colour = STATE_COLOURS.get(bar.state, "#999999")
        top = y + bar.slot + (1 - BAR_HEIGHT) / 2
        end = bar_end(bar, lane, self.timeline.now)
        style = {"facecolor": colour, "edgecolor": "black" if bar.attempt > 1 else "white",
                 "linewidth": 1.6 if bar.attempt > 1 else 0.5}
        if bar.estimated:
            style.update(hatch="..", alpha=0.75)
        self.rect(bar.start, end, top, BAR_HEIGHT, **style)
        width_px = (end - bar.start) / self.scale * self.px_per_x
        labels = [bar.label]
        if bar.state == protocol.FAILED and bar.exit_code is not None:
            labels.insert(0, f"{bar.label}  exit {bar.exit_code}")
        label = next((text for text in labels if width_px >= len(text) * self.font * 0.62 * DPI / 72 + 4), None)
        if label is not None:  # no room: the colour says it, a retry's outline too
            self.axes.text(self.x((bar.start + end) / 2), top + BAR_HEIGHT / 2, label, fontsize=self.font,
                           ha="center", va="center", zorder=6,
                           color="black" if bar.state == protocol.INTERRUPTED else "white")

    def flush(self) -> None:
        """Every rectangle of one style in one collection: thousands of attempts draw fast."""
        from matplotlib.collections import PolyCollection

        for key, verts in self.rects.items():
            style = dict(key)
            hatch = style.pop("hatch", "") or None
            collection = PolyCollection(verts, hatch=hatch, zorder=2, **style)
            self.axes.add_collection(collection)

    def legend(self) -> None:
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        entries = _legend_entries(self.timeline)
        columns = _legend_columns(entries, self.figure.get_figwidth())
        entries = _row_major(entries, columns)
        handles = [Line2D([0], [0], color=END, linewidth=1.6) if not style else Patch(label=label, **style)
                   for label, style in entries]
        self.figure.legend(handles, [label for label, _ in entries], loc="lower center", ncol=columns,
                           fontsize=LEGEND_FONT, frameon=False, bbox_to_anchor=(0.5, 0.0), handlelength=1.6,
                           handletextpad=0.8, columnspacing=1.4)
