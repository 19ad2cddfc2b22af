"""Charts drawn on the server as SVG: no script, no CDN, readable without JavaScript.

Each function takes plain numbers and labels and returns markup for a template. Colours and
fonts come from classes styled in `static/css/telmi.css`; geometry is computed here. Every
chart has a title and a description for screen readers, axes with round ticks, and values
written next to the bars, so a printed page still tells the numbers.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

FONT = 12


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    previous: int | None = None


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


def _svg(width: int, height: int, title: str, description: str, body: list[str]) -> Markup:
    chart_id = f"chart-{zlib.crc32(title.encode()):08x}"
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{chart_id}-t">{escape(title)}</title>'
        f'<desc id="{chart_id}-d">{escape(description)}</desc>' + "".join(body) + "</svg>"
    )


def bar_chart(title: str, bars: Sequence[Bar], *, unit: str = "actes") -> Markup:
    """Horizontal bars, longest first as given, with last year's value as a thin bar."""
    longest = max([len(b.label) for b in bars] + [8])
    label_width, value_width, row = min(320, 7 * longest + 16), 64, 30
    width = 720
    plot = width - label_width - value_width
    height = 16 + row * max(1, len(bars)) + 24
    ticks = nice_ticks(max([b.value for b in bars] + [b.previous or 0 for b in bars] + [1]))
    scale = plot / ticks[-1]
    body = []
    for tick in ticks:
        x = label_width + tick * scale
        body.append(
            f'<line class="grid" x1="{x:.1f}" y1="8" x2="{x:.1f}" y2="{height - 22}"/>'
            f'<text class="axis-label" x="{x:.1f}" y="{height - 6}" text-anchor="middle" '
            f'font-size="{FONT}">{number(tick)}</text>'
        )
    for i, bar in enumerate(bars):
        y = 12 + i * row
        w = max(bar.value * scale, 0.0)
        body.append(
            f'<text class="bar-label" x="{label_width - 8}" y="{y + 14}" text-anchor="end" '
            f'font-size="{FONT}">{escape(bar.label)}</text>'
            f'<rect class="bar" x="{label_width}" y="{y + 2}" width="{w:.1f}" height="16">'
            f"<title>{escape(bar.label)} : {number(bar.value)} {unit}</title></rect>"
            f'<text class="bar-value" x="{label_width + w + 6:.1f}" y="{y + 15}" '
            f'font-size="{FONT}">{number(bar.value)}</text>'
        )
        if bar.previous is not None:
            pw = max(bar.previous * scale, 0.0)
            body.append(
                f'<rect class="bar previous" x="{label_width}" y="{y + 20}" width="{pw:.1f}" '
                f'height="5"><title>Année précédente : {number(bar.previous)} {unit}</title></rect>'
            )
    body.append(
        f'<line class="axis" x1="{label_width}" y1="8" x2="{label_width}" y2="{height - 22}"/>'
    )
    description = "; ".join(f"{b.label} : {number(b.value)} {unit}" for b in bars)
    return _svg(width, height, title, description or "aucune donnée", body)


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """A line per series over shared x labels (months), with dots and a legend."""
    width, height = 1100, 300
    left, right, top, bottom = 56, 16, 34, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for s in series for v in s.values if v is not None]
    ticks = nice_ticks(max(values + [1]))
    y_of = lambda v: top + plot_h - v * plot_h / ticks[-1]  # noqa: E731
    step = plot_w / max(1, len(labels) - 1)
    body = []
    for tick in ticks:
        y = y_of(tick)
        body.append(
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}"/>'
            f'<text class="axis-label" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'font-size="{FONT}">{number(tick)}</text>'
        )
    for i, label in enumerate(labels):
        body.append(
            f'<text class="axis-label" x="{left + i * step:.1f}" y="{height - bottom + 18}" '
            f'text-anchor="middle" font-size="{FONT}">{escape(label)}</text>'
        )
    body.append(
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{width - right}" '
        f'y2="{top + plot_h}"/>'
    )
    for index, s in enumerate(series):
        points = [(left + i * step, y_of(v)) for i, v in enumerate(s.values) if v is not None]
        if points:
            d = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in points)
            body.append(f'<path class="series {s.kind}" d="{d}" fill="none"/>')
        for (x, y), (i, v) in zip(
            points, [(i, v) for i, v in enumerate(s.values) if v is not None], strict=True
        ):
            body.append(
                f'<circle class="dot {s.kind}" cx="{x:.1f}" cy="{y:.1f}" r="3.5">'
                f"<title>{escape(s.name)}, {escape(labels[i])} : {number(v)} actes</title></circle>"
            )
        lx = left + index * 200
        body.append(
            f'<line class="series {s.kind}" x1="{lx}" y1="14" x2="{lx + 24}" y2="14"/>'
            f'<text class="legend" x="{lx + 30}" y="18" font-size="{FONT}">{escape(s.name)}</text>'
        )
    description = "; ".join(
        f"{s.name} : "
        + ", ".join(
            f"{lab} {number(v)}" for lab, v in zip(labels, s.values, strict=False) if v is not None
        )
        for s in series
    )
    return _svg(width, height, title, description, body)


def column_chart(title: str, bars: Sequence[Bar], *, unit: str = "actes") -> Markup:
    """Vertical columns (years), the value on top of each."""
    width, height = 1100, 280
    left, right, top, bottom = 56, 16, 24, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    ticks = nice_ticks(max([b.value for b in bars] + [1]))
    slot = plot_w / max(1, len(bars))
    body = []
    for tick in ticks:
        y = top + plot_h - tick * plot_h / ticks[-1]
        body.append(
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}"/>'
            f'<text class="axis-label" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'font-size="{FONT}">{number(tick)}</text>'
        )
    for i, bar in enumerate(bars):
        h = bar.value * plot_h / ticks[-1]
        x = left + i * slot + slot * 0.15
        y = top + plot_h - h
        body.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}">'
            f"<title>{escape(bar.label)} : {number(bar.value)} {unit}</title></rect>"
            f'<text class="bar-value" x="{x + slot * 0.35:.1f}" y="{y - 4:.1f}" '
            f'text-anchor="middle" font-size="{FONT - 1}">{number(bar.value)}</text>'
            f'<text class="axis-label" x="{x + slot * 0.35:.1f}" y="{height - bottom + 18}" '
            f'text-anchor="middle" font-size="{FONT}">{escape(bar.label)}</text>'
        )
    body.append(
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{width - right}" '
        f'y2="{top + plot_h}"/>'
    )
    description = "; ".join(f"{b.label} : {number(b.value)} {unit}" for b in bars)
    return _svg(width, height, title, description or "aucune donnée", body)
