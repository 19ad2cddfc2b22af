"""Charts drawn on the server as SVG: no script, no CDN, readable without JavaScript.

Each function takes plain numbers and labels and returns markup for a template. Colours and
fonts come from classes styled in `static/css/telmi.css` and `statistics.css`; geometry
is computed here.

The SVG has no viewBox: horizontal positions are percentages of its width and vertical
ones CSS pixels, so a chart fills a phone or a desktop alike while its text keeps its size
(`FONT` px, never shrunk with the drawing). Labels a narrow screen has no room for carry the
class `minor`, which the stylesheet hides below a width. Every chart has a title and a
description for screen readers (the page puts the same numbers in a table beside it), axes
with round ticks and values next to the bars, so a printed page still tells the numbers. A
period still running (`partial`) is hatched or dotted and says « en cours » in words.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

FONT = 13  # CSS px
SMALL = 12  # CSS px, the smallest text of a chart
IN_PROGRESS = "(en cours)"
GUTTER = 6.0  # % of the width left of the first column or point, under the tick values


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    previous: int | None = None
    partial: bool = False  # a period still running (the current year)


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[int | None]
    kind: str  # css modifier: "current" or "previous"


def nice_ticks(top: float, count: int = 5) -> list[int]:
    """Round tick values from 0 to at least `top` (1, 2, 2.5 or 5 times a power of ten)."""
    if top <= 0:
        return [0, 1]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    step = max(1, round(step))
    ticks = list(range(0, int(math.ceil(top / step)) * step + 1, step))
    return ticks if len(ticks) > 1 else [0, step]


def number(value: int | float) -> str:
    """French thousands separator (narrow no-break space)."""
    return f"{value:,.0f}".replace(",", "\u202f")


def _pct(value: float) -> str:
    return f"{value:.2f}%"


def _chart_id(title: str) -> str:
    return f"chart-{zlib.crc32(title.encode()):08x}"


def _svg(height: int, title: str, description: str, body: list[str], *, defs: str = "") -> Markup:
    chart_id = _chart_id(title)
    return Markup(
        f'<svg class="chart" width="100%" height="{height}" role="img" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{chart_id}-t">{escape(title)}</title>'
        f'<desc id="{chart_id}-d">{escape(description)}</desc>'
        + (f"<defs>{defs}</defs>" if defs else "")
        + "".join(body)
        + "</svg>"
    )


def _hatch(pattern_id: str) -> str:
    return (
        f'<pattern id="{pattern_id}" width="6" height="6" patternUnits="userSpaceOnUse" '
        f'patternTransform="rotate(45)"><rect class="hatch-ground" width="6" height="6"/>'
        f'<line class="hatch-line" x1="0" y1="0" x2="0" y2="6"/></pattern>'
    )


def _anchored(center: float, half_slot: float) -> tuple[str, str]:
    """x and text-anchor for a marker under a slot, kept inside the chart at both edges."""
    if center > 60:
        return _pct(min(center + half_slot, 100.0)), "end"
    if center < 40:
        return _pct(max(center - half_slot, 0.0)), "start"
    return _pct(center), "middle"


def _minor(index: int, count: int, keep: bool) -> str:
    """Every other label, counted from the last one, is `minor` (hidden when narrow)."""
    return " minor" if not keep and (count - 1 - index) % 2 else ""


def _y_ticks(ticks: Sequence[int], y_of: Callable[[int], float]) -> tuple[list[str], list[str]]:
    """Grid lines across the width, and their values written just above them at the left
    (drawn last, with a halo, so that a line or a column never hides them)."""
    grid, labels = [], []
    for tick in ticks:
        y = y_of(tick)
        grid.append(f'<line class="grid" x1="0" y1="{y:.1f}" x2="100%" y2="{y:.1f}"/>')
        labels.append(
            f'<text class="axis-label tick" x="2" y="{y - 4:.1f}" font-size="{SMALL}">'
            f"{number(tick)}</text>"
        )
    return grid, labels


def bar_chart(title: str, bars: Sequence[Bar], *, unit: str = "actes") -> Markup:
    """Horizontal bars, longest first as given, each label above its bar, with last year's
    value as a thin bar under it."""
    row, top, plot = 46, 6, 80.0  # the longest tick spans 80 % of the width; values after it
    height = top + row * max(1, len(bars)) + 26
    ticks = nice_ticks(max([b.value for b in bars] + [b.previous or 0 for b in bars] + [1]))
    scale = plot / ticks[-1]
    body = []
    for tick in ticks:
        x = tick * scale
        anchor = "start" if tick == 0 else "middle"
        body.append(
            f'<line class="grid" x1="{_pct(x)}" y1="{top}" x2="{_pct(x)}" y2="{height - 22}"/>'
            f'<text class="axis-label" x="{_pct(x)}" y="{height - 6}" text-anchor="{anchor}" '
            f'font-size="{SMALL}">{number(tick)}</text>'
        )
    for i, bar in enumerate(bars):
        y = top + i * row
        w = max(bar.value * scale, 0.0)
        body.append(
            f'<text class="bar-label" x="0" y="{y + 14}" font-size="{FONT}">'
            f"{escape(bar.label)}</text>"
            f'<rect class="bar" x="0" y="{y + 19}" width="{_pct(w)}" height="16" '
            f'data-label="{escape(bar.label)}" data-value="{bar.value}">'
            f"<title>{escape(bar.label)} : {number(bar.value)} {unit}</title></rect>"
            f'<text class="bar-value" x="{_pct(w)}" dx="6" y="{y + 32}" font-size="{FONT}">'
            f"{number(bar.value)}</text>"
        )
        if bar.previous is not None:
            pw = max(bar.previous * scale, 0.0)
            body.append(
                f'<rect class="bar previous" x="0" y="{y + 37}" width="{_pct(pw)}" height="5">'
                f"<title>Année précédente : {number(bar.previous)} {unit}</title></rect>"
            )
    body.append(f'<line class="axis" x1="0" y1="{top}" x2="0" y2="{height - 22}"/>')
    description = "; ".join(f"{b.label} : {number(b.value)} {unit}" for b in bars)
    return _svg(height, title, description or "aucune donnée", body)


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    partial: int | None = None,
    unit: str = "actes",
) -> Markup:
    """A line per series over shared x labels (months), with dots and a legend. From the
    index `partial` on (the month still running), the line is dotted and the dot hollow."""
    height, top, bottom = 300, 40, 44
    plot_h = height - top - bottom
    values = [v for s in series for v in s.values if v is not None]
    ticks = nice_ticks(max(values + [1]))
    count, gutter = max(1, len(labels)), GUTTER
    slot = (100 - gutter) / count
    x_of = lambda i: gutter + (i + 0.5) * slot  # noqa: E731
    y_in = lambda v: plot_h - v * plot_h / ticks[-1]  # noqa: E731  (inside the plot)
    body, tick_labels = _y_ticks(ticks, lambda v: top + y_in(v))
    for i, label in enumerate(labels):
        running = partial is not None and i == partial
        body.append(
            f'<text class="axis-label{_minor(i, count, running)}" x="{_pct(x_of(i))}" '
            f'y="{height - bottom + 18}" text-anchor="middle" font-size="{SMALL}">'
            f"{escape(label)}</text>"
        )
        if running:
            x, anchor = _anchored(x_of(i), slot / 2)
            body.append(
                f'<text class="axis-label marker" x="{x}" y="{height - bottom + 34}" '
                f'text-anchor="{anchor}" font-size="{SMALL}">{IN_PROGRESS}</text>'
            )
    body.append(f'<line class="axis" x1="0" y1="{top + plot_h}" x2="100%" y2="{top + plot_h}"/>')
    # The lines in a nested drawing stretched to the width (x in percent), strokes unscaled.
    lines = []
    for s in series:
        points = [(x_of(i), y_in(v), i) for i, v in enumerate(s.values) if v is not None]
        whole = [p for p in points if partial is None or p[2] <= partial - 1]
        # The dotted segment: from the last whole month into the running one.
        tail = [p for p in points if partial is not None and p[2] >= partial - 1]
        for part, extra in ((whole, ""), (tail, " partial")):
            if len(part) > 1:
                d = "M" + " L".join(f"{x:.2f},{y:.1f}" for x, y, _ in part)
                lines.append(
                    f'<path class="series {s.kind}{extra}" d="{d}" fill="none" '
                    f'vector-effect="non-scaling-stroke"/>'
                )
    body.append(
        f'<svg x="0" y="{top}" width="100%" height="{plot_h}" viewBox="0 0 100 {plot_h}" '
        f'preserveAspectRatio="none" overflow="visible">' + "".join(lines) + "</svg>"
    )
    for s in series:
        for i, v in enumerate(s.values):
            if v is None:
                continue
            extra = " partial" if partial is not None and i >= partial else ""
            note = f" {IN_PROGRESS}" if extra else ""
            body.append(
                f'<circle class="dot {s.kind}{extra}" cx="{_pct(x_of(i))}" '
                f'cy="{top + y_in(v):.1f}" r="4" data-label="{escape(labels[i])}" '
                f'data-value="{v}"><title>{escape(s.name)}, {escape(labels[i])}{note} : '
                f"{number(v)} {unit}</title></circle>"
            )
    lx = 0
    for s in series:
        body.append(
            f'<line class="series {s.kind}" x1="{lx}" y1="14" x2="{lx + 24}" y2="14"/>'
            f'<text class="legend" x="{lx + 30}" y="18" font-size="{SMALL}">'
            f"{escape(s.name)}</text>"
        )
        lx += 30 + 8 * len(s.name) + 18
    if partial is not None:
        body.append(
            f'<line class="series current partial" x1="{lx}" y1="14" x2="{lx + 24}" y2="14"/>'
            f'<text class="legend" x="{lx + 30}" y="18" font-size="{SMALL}">mois en cours</text>'
        )
    body += tick_labels
    description = "; ".join(
        f"{s.name} : "
        + ", ".join(
            f"{lab}{' ' + IN_PROGRESS if partial is not None and i == partial else ''} {number(v)}"
            for i, (lab, v) in enumerate(zip(labels, s.values, strict=False))
            if v is not None
        )
        for s in series
    )
    return _svg(height, title, description or "aucune donnée", body)


def column_chart(title: str, bars: Sequence[Bar], *, unit: str = "actes") -> Markup:
    """Vertical columns (years), the value on top of each; a partial one is hatched."""
    height, top, bottom = 280, 26, 44
    plot_h = height - top - bottom
    ticks = nice_ticks(max([b.value for b in bars] + [1]))
    count, gutter = max(1, len(bars)), GUTTER
    slot = (100 - gutter) / count
    hatch = f"{_chart_id(title)}-hatch"
    body, tick_labels = _y_ticks(ticks, lambda v: top + plot_h - v * plot_h / ticks[-1])
    for i, bar in enumerate(bars):
        h = bar.value * plot_h / ticks[-1]
        x, center = gutter + i * slot + slot * 0.2, gutter + (i + 0.5) * slot
        y = top + plot_h - h
        minor = _minor(i, count, bar.partial)
        note = f" {IN_PROGRESS}" if bar.partial else ""
        rect = f'x="{_pct(x)}" y="{y:.1f}" width="{_pct(slot * 0.6)}" height="{h:.1f}"'
        body.append(
            f'<rect class="bar{" partial" if bar.partial else ""}" {rect} '
            f'data-label="{escape(bar.label)}" data-value="{bar.value}">'
            f"<title>{escape(bar.label)}{note} : {number(bar.value)} {unit}</title></rect>"
        )
        if bar.partial:
            body.append(f'<rect class="hatch" {rect} fill="url(#{hatch})"/>')
        body.append(
            f'<text class="bar-value{minor}" x="{_pct(center)}" y="{y - 5:.1f}" '
            f'text-anchor="middle" font-size="{SMALL}">{number(bar.value)}</text>'
            f'<text class="axis-label{minor}" x="{_pct(center)}" y="{height - bottom + 18}" '
            f'text-anchor="middle" font-size="{SMALL}">{escape(bar.label)}</text>'
        )
        if bar.partial:
            mx, anchor = _anchored(center, slot / 2)
            body.append(
                f'<text class="axis-label marker" x="{mx}" y="{height - bottom + 34}" '
                f'text-anchor="{anchor}" font-size="{SMALL}">{IN_PROGRESS}</text>'
            )
    body.append(f'<line class="axis" x1="0" y1="{top + plot_h}" x2="100%" y2="{top + plot_h}"/>')
    body += tick_labels
    description = "; ".join(
        f"{b.label}{' ' + IN_PROGRESS if b.partial else ''} : {number(b.value)} {unit}"
        for b in bars
    )
    defs = _hatch(hatch) if any(b.partial for b in bars) else ""
    return _svg(height, title, description or "aucune donnée", body, defs=defs)
