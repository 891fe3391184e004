"""The loss curve of the training page: read ``loss_log.txt`` and draw it as an SVG picture, with no plotting library.

``loss_log.txt`` holds CycleGAN's lines, ``(epoch: 3, iters: 200, time: 0.512, data: 0.003) D_A: 0.251 G_A: 0.73 ...``,
optionally followed by `` | <progress>``, and a ``==== Training Loss (<date>) ====`` header at each start of train.py.
The x axis is the fractional epoch, ``epoch - 1 + iters / epoch_size`` (epochs completed), as in the Visdom plot.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

_ENTRY = re.compile(r"^\(epoch: (\d+), iters: (\d+)[^)]*\)\s?(.*)$")
_LOSS = re.compile(r"([A-Za-z_][\w.]*): (nan|[-+]?inf|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")
HEADER = "================ Training Loss"
# Matplotlib's "tab10" colours, the palette most users read loss plots in.
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def rgb(color: str) -> list[int]:
    """``"#1f77b4"`` -> ``[31, 119, 180]``."""
    return [int(color[i : i + 2], 16) for i in (1, 3, 5)]


@dataclass
class Entry:
    epoch: int
    iters: int
    losses: dict[str, float]


@dataclass
class LossLog:
    """The entries of ``loss_log.txt``, read incrementally: ``update()`` reads only what was appended since.

    When train.py starts again (a header line) at epoch ``e``, earlier entries of epochs ≥ ``e`` are dropped: a
    resumed run continues the curve and a run started over replaces it.
    """

    path: Path
    entries: list[Entry] = field(default_factory=list)
    _offset: int = 0
    _new_session: bool = False

    def update(self) -> list[Entry]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return self.entries
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        self._offset += end
        for line in data[:end].decode("utf-8", errors="replace").splitlines():
            self._add_line(line)
        return self.entries

    def _add_line(self, line: str) -> None:
        if line.startswith(HEADER):
            self._new_session = True
            return
        entry = parse_line(line)
        if entry is None:
            return
        if self._new_session:
            self.entries = [e for e in self.entries if e.epoch < entry.epoch]
            self._new_session = False
        self.entries.append(entry)


def parse_line(line: str) -> Entry | None:
    """One ``loss_log.txt`` line -> ``Entry``, or None for headers and anything else."""
    match = _ENTRY.match(line.strip())
    if match is None:
        return None
    body = match.group(3).split(" | ", 1)[0]
    losses = {name: float(value) for name, value in _LOSS.findall(body)}
    return Entry(int(match.group(1)), int(match.group(2)), losses) if losses else None


def curve_points(entries: list[Entry], epoch_size: int | None = None) -> tuple[list[float], dict[str, list[float]]]:
    """``(x, {loss name: y})``; ``epoch_size`` (images per epoch) defaults to the largest ``iters`` logged."""
    if not entries:
        return [], {}
    size = epoch_size or max(e.iters for e in entries) or 1
    names: list[str] = []
    for e in entries:
        names.extend(n for n in e.losses if n not in names)
    x = [e.epoch - 1 + e.iters / size for e in entries]
    series = {n: [e.losses.get(n, math.nan) for e in entries] for n in names}
    return x, series


def downsample(x: list[float], series: dict[str, list[float]], max_points: int):
    """Average consecutive points in buckets so that at most ``max_points`` remain (long runs log many)."""
    if len(x) <= max_points:
        return x, series
    step = math.ceil(len(x) / max_points)

    def mean(values: list[float]) -> float:
        finite = [v for v in values if math.isfinite(v)]
        return sum(finite) / len(finite) if finite else math.nan

    xs = [mean(x[i : i + step]) for i in range(0, len(x), step)]
    return xs, {n: [mean(y[i : i + step]) for i in range(0, len(y), step)] for n, y in series.items()}


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [lo, hi] (steps of 1, 2 or 5 × 10^k)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10)), key=lambda st: abs((hi - lo) / st - count))
    first = math.floor(lo / step + 1e-9) * step
    ticks, t = [], first
    while t <= hi + step * 1e-6:
        if t >= lo - step * 1e-6:
            ticks.append(round(t, 10))
        t += step
    return ticks


def _fmt(v: float) -> str:
    return f"{v + 0.0:.4g}"  # + 0.0: a tick at -0.0 reads 0


def render_svg(
    x: list[float],
    series: dict[str, list[float]],
    title: str = "loss",
    width: int = 820,
    height: int = 340,
    max_points: int = 1500,
    svg_id: str = "loss_plot",
    ylabel: str = "loss",
    empty_text: str = "no losses logged yet",
) -> str:
    """An SVG line chart: one coloured path per loss (``<path class="loss" data-name=...>``), axes and a legend.
    ``svg_id`` names the chart (and its clip path), so that several can share a page (the metrics over epochs).

    The y axis spans 0 (or the smallest value) to a little above the 99th percentile, so that the first
    iterations' spikes do not flatten the rest; what lies above is clipped.
    """
    esc = html.escape
    left, right, top, bottom = 56, 150, 30, 40
    pw, ph = width - left - right, height - top - bottom
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{esc(svg_id)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f"<title>{esc(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left + pw / 2}" y="18" text-anchor="middle" font-size="13">{esc(title)}</text>',
    ]
    x, series = downsample(x, series, max_points)
    values = sorted(v for y in series.values() for v in y if math.isfinite(v))
    if not x or not values:
        parts.append(
            f'<text x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle" fill="#777">'
            f"{esc(empty_text)}</text></svg>"
        )
        return "\n".join(parts)
    x0, x1 = min(x), max(x)
    if x1 - x0 < 1e-9:
        x0, x1 = x0 - 0.5, x1 + 0.5
    y0 = min(0.0, values[0])
    y1 = values[min(len(values) - 1, int(0.99 * len(values)))] * 1.05
    if y1 <= y0:
        y1 = y0 + 1.0

    def px(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * pw

    def py(v: float) -> float:
        return top + (1 - (v - y0) / (y1 - y0)) * ph

    clip = "plot_area" if svg_id == "loss_plot" else f"{svg_id}_area"
    parts.append(f'<clipPath id="{esc(clip)}"><rect x="{left}" y="{top}" width="{pw}" height="{ph}"/></clipPath>')
    for t in nice_ticks(y0, y1):
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    for t in nice_ticks(x0, x1, 8):
        parts.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{top}" y2="{top + ph}" stroke="#f0f0f0"/>')
        parts.append(f'<text x="{px(t):.1f}" y="{top + ph + 15}" text-anchor="middle">{_fmt(t)}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle">epoch</text>')
    parts.append(
        f'<text x="14" y="{top + ph / 2}" text-anchor="middle" transform="rotate(-90 14 {top + ph / 2})">'
        f"{esc(ylabel)}</text>"
    )
    for i, (name, y) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        d, pen_down = [], False
        for xv, yv in zip(x, y):
            if not math.isfinite(yv):
                pen_down = False
                continue
            d.append(f"{'L' if pen_down else 'M'}{px(xv):.1f} {py(yv):.1f}")
            pen_down = True
        parts.append(
            f'<path class="loss" data-name="{esc(name)}" d="{" ".join(d)}" fill="none" stroke="{color}" '
            f'stroke-width="1.5" clip-path="url(#{esc(clip)})"><title>{esc(name)}</title></path>'
        )
        last_i = next((j for j in range(len(y) - 1, -1, -1) if math.isfinite(y[j])), None)
        last = y[last_i] if last_i is not None else math.nan
        if last_i is not None and y0 <= last <= y1:  # the latest value as a dot: a lone point shows too
            parts.append(f'<circle cx="{px(x[last_i]):.1f}" cy="{py(last):.1f}" r="2.5" fill="{color}"/>')
        ly = top + 8 + i * 16
        parts.append(
            f'<line x1="{left + pw + 12}" x2="{left + pw + 32}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="3"/>'
        )
        parts.append(f'<text x="{left + pw + 38}" y="{ly + 4}">{esc(name)} {_fmt(last)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def loss_curve_svg(log_path: str | Path, title: str = "loss", epoch_size: int | None = None) -> str:
    """Read ``loss_log.txt`` from the start and return its SVG picture (see ``LossLog`` for long runs)."""
    x, series = curve_points(LossLog(Path(log_path)).update(), epoch_size)
    return render_svg(x, series, title)
