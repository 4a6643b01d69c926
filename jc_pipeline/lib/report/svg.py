"""Hand-written inline SVG charts for the static state report: no script, no library, no network.

Two charts:

* :func:`trend_chart` — a metric's state values over time (line and points) with, on a strip under the same
  x axis, the share of expected agencies that reported each point, so coverage is never read apart from the value.
  Points of incomplete periods are hollow; a period without a value breaks the line (missing is not zero), and so
  does one the caller marks as not joined (:attr:`TrendPoint.joined`: a month whose reports are still arriving is a
  point of its own, not a fall of the line).
* :func:`bar_chart` — one breakdown of one period as horizontal bars.

Every point and bar carries a ``<title>`` (the browser's tooltip and the screen reader's text) with the exact
value and coverage. All text is escaped here; callers pass plain strings. Each chart is an ``<svg class="chart">``
with ``data-points`` = the number of marks (points with a value, bars) drawn, which the browser test compares
with what rendered; the coverage strip has one bar per period.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 640
_LEFT, _RIGHT, _TOP = 64, 12, 12
_PLOT_H, _STRIP_H, _AXIS_H = 150, 34, 22
_INK, _MUTED, _GRID = "#1f5f99", "#52606d", "#d9e2ec"
_BAR, _STRIP_BG, _STRIP_OK, _STRIP_PART = "#3a7ca5", "#eef2f6", "#2f855a", "#d69e2e"


@dataclass(frozen=True)
class TrendPoint:
    """One period of a trend: its label, value (None: no agency counted) and coverage."""

    label: str
    value: float | None
    reporting: int
    expected: int
    tooltip: str
    #: Text under the x axis at this point, or None (long series label only some points).
    tick: str | None = None
    #: Whether the line runs through this point (when it has a value): False for a period too few agencies reported.
    joined: bool = True


@dataclass(frozen=True)
class Bar:
    """One category of a breakdown."""

    label: str
    value: float
    tooltip: str


def trend_chart(title: str, points: Sequence[TrendPoint], *, axis_format=None) -> str:
    """An SVG trend of ``points`` (consecutive periods, gaps included as points without a value) with a coverage
    strip; ``axis_format`` formats the y-axis ticks."""
    fmt = axis_format or _plain
    n = len(points)
    height = _TOP + _PLOT_H + 8 + _STRIP_H + _AXIS_H
    plot_w = WIDTH - _LEFT - _RIGHT
    step = plot_w / max(n, 1)
    xs = [_LEFT + step * (i + 0.5) for i in range(n)]
    values = [p.value for p in points if p.value is not None]
    top = _nice_max(max(values)) if values else 1.0
    y = lambda v: _TOP + _PLOT_H - (v / top) * _PLOT_H  # noqa: E731 - a local scale reads best as a lambda

    parts = [_svg_open(title, height, len(values))]
    for tick in (0.0, top / 2, top):  # three gridlines keep small charts readable
        ty = y(tick)
        parts.append(f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="{_GRID}"/>')
        parts.append(_text(_LEFT - 6, ty + 4, fmt(tick), anchor="end", size=10))
    parts.append(_polylines(points, xs, y))
    for x, point in zip(xs, points, strict=True):
        if point.value is None:
            continue
        complete = point.reporting >= point.expected
        fill = _INK if complete else "#fff"
        parts.append(f'<circle class="mark" cx="{x:.1f}" cy="{y(point.value):.1f}" r="{3 if n > 40 else 4}" '
                     f'fill="{fill}" stroke="{_INK}" stroke-width="1.5"><title>{escape(point.tooltip)}</title>'
                     f'</circle>')
    parts.append(_coverage_strip(points, xs, step))
    axis_y = _TOP + _PLOT_H + 8 + _STRIP_H + 15
    for x, point in zip(xs, points, strict=True):
        if point.tick:
            parts.append(_text(x, axis_y, point.tick, anchor="middle", size=10))
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(title: str, bars: Sequence[Bar], *, value_format=None) -> str:
    """Horizontal bars, one per category, each labelled with its value."""
    fmt = value_format or _plain
    row_h, label_w = 20, 210
    height = _TOP + row_h * len(bars) + 8
    top = _nice_max(max((b.value for b in bars), default=0.0))
    span = WIDTH - label_w - _RIGHT - 80
    parts = [_svg_open(title, height, len(bars))]
    for i, bar in enumerate(bars):
        y0 = _TOP + i * row_h
        width = max(bar.value / top * span, 0.0) if top else 0.0
        parts.append(_text(label_w - 6, y0 + 14, _shorten(bar.label, 34), anchor="end", size=11))
        parts.append(f'<rect class="mark" x="{label_w}" y="{y0 + 3}" width="{width:.1f}" height="{row_h - 6}" '
                     f'fill="{_BAR}"><title>{escape(bar.tooltip)}</title></rect>')
        parts.append(_text(label_w + width + 4, y0 + 14, fmt(bar.value), size=11))
    parts.append("</svg>")
    return "".join(parts)


# ---- pieces -----------------------------------------------------------------------------------------------------


def _svg_open(title: str, height: float, marks: int) -> str:
    return (f'<svg class="chart" role="img" width="{WIDTH}" '
            f'height="{height:.0f}" viewBox="0 0 {WIDTH} {height:.0f}" data-points="{marks}">'
            f"<title>{escape(title)}</title>")


def _polylines(points: Sequence[TrendPoint], xs: Sequence[float], y) -> str:
    """One polyline per run of consecutive joined periods (:attr:`TrendPoint.joined`): a period without a value, or
    with too few agencies, breaks the line."""
    runs: list[list[str]] = [[]]
    for x, point in zip(xs, points, strict=True):
        if point.value is None or not point.joined:
            runs.append([])
        else:
            runs[-1].append(f"{x:.1f},{y(point.value):.1f}")
    return "".join(f'<polyline fill="none" stroke="{_INK}" stroke-width="1.6" points="{" ".join(run)}"/>'
                   for run in runs if len(run) > 1)


def _coverage_strip(points: Sequence[TrendPoint], xs: Sequence[float], step: float) -> str:
    """Per point a bar of reporting / expected agencies, on a full-height background: the coverage strip."""
    y0 = _TOP + _PLOT_H + 8
    width = max(min(step * 0.8, 18), 1.0)
    parts = [f'<rect x="{_LEFT}" y="{y0}" width="{WIDTH - _LEFT - _RIGHT}" height="{_STRIP_H}" fill="{_STRIP_BG}"/>',
             _text(_LEFT - 6, y0 + 12, "agencies", anchor="end", size=9),
             _text(_LEFT - 6, y0 + 23, "reporting", anchor="end", size=9)]
    for x, point in zip(xs, points, strict=True):
        title = (point.tooltip if point.value is None else
                 f"{point.label}: {point.reporting} of {point.expected} agencies reporting")
        share = point.reporting / point.expected if point.expected else 0.0
        h = min(share, 1.0) * _STRIP_H
        color = _STRIP_OK if share >= 1 else _STRIP_PART
        parts.append(f'<rect class="coverage" x="{x - width / 2:.1f}" y="{y0 + _STRIP_H - h:.1f}" '
                     f'width="{width:.1f}" height="{h:.1f}" fill="{color}">'
                     f"<title>{escape(title)}</title></rect>")
    return "".join(parts)


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = 11) -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{_MUTED}">'
            f"{escape(text)}</text>")


def _nice_max(value: float) -> float:
    """The smallest 1/2/2.5/5 x 10^k at or above ``value`` (the y-axis top), 1 for nothing to show."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= value)


def _plain(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 or value == int(value) else f"{value:,.2f}"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
