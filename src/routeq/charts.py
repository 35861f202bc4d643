"""Small inline SVG charts for the HTML report: stacked bars, lines and a labelled plane. Pure.

Written in plain Python so the report is one self-contained file that any browser shows with
no script and no network: each chart is an ``<svg>`` element with its own axes, ticks and
legend. The charts decide nothing about routing; ``routeq.html_report`` gives them the numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

from routeq.evaluation.plot import FONT, PALETTE, nice_ticks

WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 70, 150, 34, 46  # margins: the legend sits in the right one
Format = Callable[[float], str]


@dataclass(frozen=True)
class Line:
    """One series of a line chart: y per x (None: no value there), drawn in ``colour``."""

    name: str
    xs: Sequence[float]
    ys: Sequence[float | None]
    colour: str
    dashed: bool = False


@dataclass(frozen=True)
class Point:
    """A labelled point of the plane."""

    label: str
    x: float
    y: float
    colour: str
    note: str = ""


def colours(names: Sequence[str]) -> dict[str, str]:
    """A colour per name, in order, so every chart of a report shows a tier the same way."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


class _Frame:
    """The plot area of one chart: maps data to pixels and draws axes, ticks and titles."""

    def __init__(
        self,
        title: str,
        x_range: tuple[float, float],
        y_range: tuple[float, float],
        y_format: Format,
        y_label: str,
    ) -> None:
        self.parts: list[str] = []
        self.x0, self.x1 = x_range
        self.y_ticks, _ = nice_ticks(*y_range, count=5)
        self.y0, self.y1 = min(self.y_ticks[0], y_range[0]), max(self.y_ticks[-1], y_range[1])
        self.plot_w, self.plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
        self.parts.append(
            f'<text x="{LEFT}" y="20" font-size="14" font-weight="bold">{escape(title)}</text>'
        )
        for tick in self.y_ticks:
            y = self.py(tick)
            self.parts.append(
                f'<line x1="{LEFT}" x2="{LEFT + self.plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                'stroke="#e4e4e4"/>'
                f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">'
                f"{escape(y_format(tick))}</text>"
            )
        self.parts.append(
            f'<text transform="translate(14 {TOP + self.plot_h / 2:.0f}) rotate(-90)" '
            f'font-size="11" text-anchor="middle">{escape(y_label)}</text>'
            f'<rect x="{LEFT}" y="{TOP}" width="{self.plot_w}" height="{self.plot_h}" '
            'fill="none" stroke="#888"/>'
        )

    def px(self, x: float) -> float:
        span = self.x1 - self.x0 or 1.0
        return LEFT + (x - self.x0) / span * self.plot_w

    def py(self, y: float) -> float:
        span = self.y1 - self.y0 or 1.0
        return TOP + self.plot_h - (y - self.y0) / span * self.plot_h

    def x_label(self, x: float, text: str) -> None:
        self.parts.append(
            f'<text x="{self.px(x):.1f}" y="{TOP + self.plot_h + 16}" font-size="11" '
            f'text-anchor="middle">{escape(text)}</text>'
        )

    def x_title(self, text: str) -> None:
        self.parts.append(
            f'<text x="{LEFT + self.plot_w / 2:.0f}" y="{HEIGHT - 6}" font-size="11" '
            f'text-anchor="middle">{escape(text)}</text>'
        )

    def legend(self, entries: Sequence[tuple[str, str]]) -> None:
        for i, (name, colour) in enumerate(entries):
            y = TOP + 8 + i * 18
            x = LEFT + self.plot_w + 14
            self.parts.append(
                f'<rect x="{x}" y="{y - 9}" width="12" height="12" fill="{colour}"/>'
                f'<text x="{x + 18}" y="{y + 1}" font-size="12">{escape(name)}</text>'
            )

    def svg(self, chart_id: str, description: str) -> str:
        return (
            f'<svg id="{escape(chart_id)}" role="img" aria-label="{escape(description)}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
            f'font-family="{FONT}" xmlns="http://www.w3.org/2000/svg">'
            f"<title>{escape(description)}</title>{''.join(self.parts)}</svg>"
        )


def stacked_bars(
    chart_id: str,
    title: str,
    categories: Sequence[str],
    stacks: Mapping[str, Sequence[float]],
    palette: Mapping[str, str],
    y_format: Format,
    y_label: str,
) -> str:
    """One bar per category, stacked by series (``stacks``: name -> value per category)."""
    totals = [sum(values[i] for values in stacks.values()) for i in range(len(categories))]
    frame = _Frame(
        title, (0, max(len(categories), 1)), (0, max(totals, default=0) or 1), y_format, y_label
    )
    slot = frame.plot_w / max(len(categories), 1)
    bar = min(60.0, slot * 0.7)
    shown_every = max(1, len(categories) // 10)  # at most about ten labels under the axis
    for i, category in enumerate(categories):
        base = 0.0
        for name, values in stacks.items():
            value = values[i]
            if value <= 0:
                continue
            top, bottom = frame.py(base + value), frame.py(base)
            frame.parts.append(
                f'<rect x="{LEFT + slot * (i + 0.5) - bar / 2:.1f}" y="{top:.1f}" '
                f'width="{bar:.1f}" height="{bottom - top:.1f}" fill="{palette[name]}">'
                f"<title>{escape(f'{category} {name}: {y_format(value)}')}</title></rect>"
            )
            base += value
        if i % shown_every == 0:
            frame.x_label(i + 0.5, category)
    frame.legend([(name, palette[name]) for name in stacks])
    return frame.svg(chart_id, title)


def lines(
    chart_id: str,
    title: str,
    series: Sequence[Line],
    x_ticks: Sequence[tuple[float, str]],
    y_range: tuple[float, float],
    y_format: Format,
    y_label: str,
    x_title: str = "",
    references: Sequence[tuple[str, float, str]] = (),
) -> str:
    """Lines over a shared x axis (a series with one point is drawn as a dot), and dashed
    horizontal ``references`` (label, y, colour) across the whole plot."""
    xs = [x for line in series for x in line.xs] + [x for x, _ in x_ticks]
    low, high = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if high == low:
        low, high = low - 0.5, high + 0.5
    frame = _Frame(title, (low, high), y_range, y_format, y_label)
    for x, label in x_ticks:
        frame.x_label(x, label)
    if x_title:
        frame.x_title(x_title)
    for label, y_value, colour in references:
        y = frame.py(y_value)
        frame.parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + frame.plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{colour}" stroke-width="1.5" stroke-dasharray="6 4">'
            f"<title>{escape(label)}</title></line>"
        )
    for line in series:
        points = [
            (frame.px(x), frame.py(y))
            for x, y in zip(line.xs, line.ys, strict=True)
            if y is not None
        ]
        dash = ' stroke-dasharray="6 4"' if line.dashed else ""
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            frame.parts.append(
                f'<polyline points="{path}" fill="none" stroke="{line.colour}" '
                f'stroke-width="2"{dash}><title>{escape(line.name)}</title></polyline>'
            )
        for x, y in points if len(points) <= 40 else []:
            frame.parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{line.colour}"/>')
    frame.legend([(line.name, line.colour) for line in series] + [(r[0], r[2]) for r in references])
    return frame.svg(chart_id, title)


def plane(
    chart_id: str,
    title: str,
    points: Sequence[Point],
    x_format: Format,
    x_label: str,
    y_label: str,
) -> str:
    """Labelled points on a cost (x) by quality (y) plane, both axes from 0; each point's label
    is beside it (on its left when it is in the right third), so there is no legend."""
    high_x = max((p.x for p in points), default=0) * 1.15 or 1.0
    frame = _Frame(title, (0, high_x), (0, 1), lambda v: f"{v:.1f}", y_label)
    ticks, _ = nice_ticks(0, high_x, count=5)
    for tick in ticks:
        if tick <= high_x:
            frame.x_label(tick, x_format(tick))
    frame.x_title(x_label)
    for point in points:
        x, y = frame.px(point.x), frame.py(point.y)
        # a label beside a point in the right third goes under it, to its left, where the
        # cheaper points' labels (above and to their right) are not
        left = x > LEFT + frame.plot_w * 2 / 3
        label_x, anchor = (x - 10, "end") if left else (x + 10, "start")
        label_y = y + 22 if left else y - 8
        frame.parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="7" fill="{point.colour}" stroke="#fff">'
            f"<title>{escape(f'{point.label}: {x_format(point.x)}, {point.y:.3f}')}</title>"
            "</circle>"
            f'<text x="{label_x:.1f}" y="{label_y:.1f}" font-size="12" text-anchor="{anchor}">'
            f"{escape(point.label)}</text>"
        )
        if point.note:
            frame.parts.append(
                f'<text x="{label_x:.1f}" y="{label_y + 14:.1f}" font-size="10" fill="#555" '
                f'text-anchor="{anchor}">{escape(point.note)}</text>'
            )
    return frame.svg(chart_id, title)
