"""The quality curves as a picture: an SVG written in plain Python, no plotting library. Pure.

One chart: mean quality (y) against the share of prompts sent to the strong model (x, 0 to
100%), one line per router, the random router dashed and the oracle dotted, with horizontal
reference lines at the weak and the strong model's own quality and at 95% of the strong one's
(the target the table's "strong share for 95%" reads). The legend sits to the right of the
plot, outside it, so that it never hides a curve.

:func:`figure` decides everything that is drawn (ranges, ticks, lines, styles, labels) so that
the SVG here and the PNG of ``routeq.evaluation.plot_png`` show the same chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Literal

from routeq.evaluation.harness import Evaluation

Style = Literal["router", "random", "oracle"]

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2")
"""Colours of the measured routers in turn (matplotlib's tab10 without its grey)."""

RANDOM_COLOUR = "#7f7f7f"
ORACLE_COLOUR = "#222222"
REFERENCE_COLOUR = "#9a9a9a"
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"

Y_LABEL = "mean quality (score from 0 to 1)"
X_LABEL = "share of prompts sent to the strong model"


@dataclass(frozen=True)
class Series:
    """One router's line: its points, how it is drawn, and its legend text."""

    name: str
    detail: str
    shares: list[float]
    qualities: list[float]
    style: Style
    colour: str


@dataclass(frozen=True)
class Reference:
    """A horizontal line at a quality, labelled just above one of its ends.

    Every curve starts at the weak model's quality (share 0) and ends at the strong model's
    (share 1), so the weak line is labelled on the right and the upper lines on the left,
    where no curve is near them."""

    label: str
    quality: float
    side: Literal["left", "right"]
    dotted: bool = False


@dataclass(frozen=True)
class Figure:
    title: str
    series: list[Series]
    references: list[Reference]
    y_low: float
    y_high: float
    y_ticks: list[float]
    y_decimals: int


def figure(evaluations: Sequence[Evaluation], title: str) -> Figure:
    """What to draw for ``evaluations`` (all measured on the same examples, as ``routeq eval``
    makes them): routers named ``random`` and ``oracle`` are the reference routers."""
    if not evaluations:
        raise ValueError("nothing to plot: no evaluations")
    summary = evaluations[0].summary
    weak, strong = summary.weak_quality, summary.strong_quality
    references = [
        Reference(f"strong model {strong:.3f}", strong, "left"),
        Reference("95% of strong", 0.95 * strong, "left", dotted=True),
        Reference(f"weak model {weak:.3f}", weak, "right"),
    ]
    series: list[Series] = []
    colours = iter(PALETTE * (1 + len(evaluations) // len(PALETTE)))
    for evaluation in evaluations:
        style: Style = (
            "random"
            if evaluation.name == "random"
            else "oracle"
            if evaluation.name == "oracle"
            else "router"
        )
        colour = {"random": RANDOM_COLOUR, "oracle": ORACLE_COLOUR}.get(style) or next(colours)
        series.append(
            Series(
                name=evaluation.name,
                detail=_detail(evaluation),
                shares=[p.strong_share for p in evaluation.points],
                qualities=[p.quality for p in evaluation.points],
                style=style,
                colour=colour,
            )
        )
    values = [q for s in series for q in s.qualities] + [r.quality for r in references]
    low, high = min(values), max(values)
    pad = max(high - low, 0.05) * 0.04
    ticks, decimals = nice_ticks(max(0.0, low - pad), min(1.0, high + pad))
    return Figure(title, series, references, ticks[0], ticks[-1], ticks, decimals)


def _detail(evaluation: Evaluation) -> str:
    """The legend's second line: the two numbers a reader compares routers by."""
    summary = evaluation.summary
    share = summary.share_for_95pct_strong
    reach = "never reaches 95%" if share is None else f"95% at {share:.0%} strong"
    return f"APGR {summary.apgr:.3f} · {reach}"


def nice_ticks(low: float, high: float, count: int = 6) -> tuple[list[float], int]:
    """About ``count`` evenly spaced round values (steps of 1, 2, 2.5 or 5 times a power of
    ten) covering ``low`` to ``high``, and the decimals that print them apart."""
    if high <= low:
        low, high = low - 0.05, high + 0.05
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    multiple = next(m for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * magnitude >= raw * (1 - 1e-9))
    step = multiple * magnitude
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    ticks = [round(i * step, 12) for i in range(first, last + 1)]
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) + (1 if multiple == 2.5 else 0)
    return ticks, decimals


# -- SVG ------------------------------------------------------------------------------------------

_LEFT, _TOP, _PLOT_W, _PLOT_H = 74, 52, 600, 400
_LEGEND_GAP = 28
_LINE_H = 17
_MIN_STEP = 0.5
"""Points closer than this (in pixels) to the last one drawn are skipped: an MMLU curve has
14,000 points over 600 pixels, and drawing the sub-pixel steps only makes the file big."""

# How each style is stroked; the legend's sample line uses the same attributes.
_STROKES: dict[Style, str] = {
    "router": 'stroke-width="2.2" stroke-linejoin="round"',
    "random": 'stroke-width="1.8" stroke-dasharray="7 5"',
    "oracle": 'stroke-width="2.4" stroke-dasharray="0.1 4.5" stroke-linecap="round"',
}


def svg(evaluations: Sequence[Evaluation], title: str) -> str:
    """The chart as a standalone SVG document (UTF-8 text)."""
    fig = figure(evaluations, title)
    legend_w = max(_text_width(s.name, 12.5) for s in fig.series) + 48
    legend_w = max(legend_w, max(_text_width(s.detail, 11) for s in fig.series) + 48, 200)
    width = _LEFT + _PLOT_W + _LEGEND_GAP + legend_w + 12
    height = _TOP + _PLOT_H + 64
    bottom, right = _TOP + _PLOT_H, _LEFT + _PLOT_W

    def x_of(share: float) -> float:
        return _LEFT + share * _PLOT_W

    def y_of(quality: float) -> float:
        return _TOP + (fig.y_high - quality) / (fig.y_high - fig.y_low) * _PLOT_H

    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height}" '
        f'viewBox="0 0 {width:.0f} {height}" font-family="{FONT}" font-size="12" fill="#222">',
        f"<title>{escape(fig.title)}</title>",
        f'<rect width="{width:.0f}" height="{height}" fill="#ffffff"/>',
        f'<text x="{_LEFT + _PLOT_W / 2}" y="{_TOP - 22}" text-anchor="middle" font-size="15" '
        f'font-weight="bold">{escape(fig.title)}</text>',
    ]
    # grid and ticks
    out.append('<g class="grid" stroke="#e6e6e6" stroke-width="1">')
    for step in range(11):
        x = x_of(step / 10)
        out.append(f'<line x1="{x:.1f}" y1="{_TOP}" x2="{x:.1f}" y2="{bottom}"/>')
    for tick in fig.y_ticks:
        y = y_of(tick)
        out.append(f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}"/>')
    out.append("</g>")
    out.append('<g class="ticks" fill="#444" font-size="11">')
    for step in range(11):
        out.append(
            f'<text x="{x_of(step / 10):.1f}" y="{bottom + 17}" '
            f'text-anchor="middle">{step * 10}%</text>'
        )
    for tick in fig.y_ticks:
        out.append(
            f'<text x="{_LEFT - 8}" y="{y_of(tick) + 4:.1f}" '
            f'text-anchor="end">{tick:.{fig.y_decimals}f}</text>'
        )
    out.append("</g>")
    out.append(
        f'<text x="{_LEFT + _PLOT_W / 2}" y="{bottom + 42}" text-anchor="middle" '
        f'font-size="13">{escape(X_LABEL)}</text>'
    )
    middle = _TOP + _PLOT_H / 2
    out.append(
        f'<text x="{_LEFT - 50}" y="{middle}" text-anchor="middle" font-size="13" '
        f'transform="rotate(-90 {_LEFT - 50} {middle})">{escape(Y_LABEL)}</text>'
    )
    # reference lines, labelled just above their right end
    out.append('<g class="references">')
    for ref in fig.references:
        y = y_of(ref.quality)
        dash = ' stroke-dasharray="2 3"' if ref.dotted else ""
        out.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" '
            f'stroke="{REFERENCE_COLOUR}" stroke-width="1.2"{dash}/>'
        )
    out.append("</g>")
    # the curves
    out.append('<g class="curves" fill="none">')
    for series in fig.series:
        coords = _thinned(
            [(x_of(s), y_of(q)) for s, q in zip(series.shares, series.qualities, strict=True)]
        )
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        out.append(
            f'<polyline class="curve {series.style}" data-router="{escape(series.name)}" '
            f'stroke="{series.colour}" {_STROKES[series.style]} points="{points}">'
            f"<title>{escape(series.name)}</title></polyline>"
        )
    out.append("</g>")
    # reference labels above the curves, with a white halo so that a line under them
    # does not cross the letters
    out.append(
        '<g class="reference-labels" font-size="10.5" fill="#666" '
        'stroke="#ffffff" stroke-width="3" paint-order="stroke">'
    )
    for ref in fig.references:
        x, anchor = (_LEFT + 6, "start") if ref.side == "left" else (right - 6, "end")
        out.append(
            f'<text x="{x}" y="{y_of(ref.quality) - 4:.1f}" text-anchor="{anchor}">'
            f"{escape(ref.label)}</text>"
        )
    out.append("</g>")
    # the frame, drawn last so that curves at the edges do not paint over it
    out.append(
        f'<rect x="{_LEFT}" y="{_TOP}" width="{_PLOT_W}" height="{_PLOT_H}" fill="none" '
        f'stroke="#555" stroke-width="1"/>'
    )
    # legend
    legend_x = right + _LEGEND_GAP
    out.append(f'<g class="legend" transform="translate({legend_x} {_TOP + 6})">')
    for index, series in enumerate(fig.series):
        y = index * (2 * _LINE_H + 10)
        out.append(
            f'<line x1="0" y1="{y}" x2="30" y2="{y}" stroke="{series.colour}" '
            f"{_STROKES[series.style]}/>"
        )
        out.append(f'<text x="40" y="{y + 4}" font-size="12.5">{escape(series.name)}</text>')
        out.append(
            f'<text x="40" y="{y + 4 + _LINE_H}" font-size="11" fill="#666">'
            f"{escape(series.detail)}</text>"
        )
    out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _thinned(coords: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """``coords`` without the points closer than :data:`_MIN_STEP` to the last one kept; the
    first and the last are always kept."""
    if len(coords) <= 2:
        return list(coords)
    kept = [coords[0]]
    for x, y in coords[1:-1]:
        last_x, last_y = kept[-1]
        if math.hypot(x - last_x, y - last_y) >= _MIN_STEP:
            kept.append((x, y))
    kept.append(coords[-1])
    return kept


def _text_width(text: str, size: float) -> float:
    """A text's width in pixels, estimated (an SVG has no font metrics to ask): 0.6 em a
    character is generous for DejaVu Sans, so the legend never runs off the image."""
    return len(text) * size * 0.6
