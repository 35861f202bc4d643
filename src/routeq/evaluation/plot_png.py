"""The quality curves as a PNG, drawn with matplotlib from the same :func:`~routeq.evaluation.
plot.figure` as the SVG, so the two show one chart.

matplotlib is an optional dependency (the ``learn`` extra) and heavy to import, so it is
imported only inside :func:`png`, never when this module loads: ``routeq.evaluation`` stays a
pure layer that imports no plotting library at import time. The figure is drawn on the Agg
canvas directly (``matplotlib.figure.Figure`` and ``FigureCanvasAgg``), not through pyplot,
so no GUI backend is picked and no global pyplot state is touched. Text is in matplotlib's
own DejaVu Sans, the SVG's first choice, so both look alike on any machine.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Sequence

from routeq.errors import ConfigError
from routeq.evaluation.harness import Evaluation
from routeq.evaluation.plot import (
    REFERENCE_COLOUR,
    X_LABEL,
    Y_LABEL,
    Style,
    figure,
)

MISSING = (
    "a PNG plot needs matplotlib, which comes with routeq's learn extra: "
    "pip install 'routeq[learn]' (an .svg plot needs nothing more)"
)

_LINES: dict[Style, dict[str, object]] = {
    "router": {"linestyle": "-", "linewidth": 2.0},
    "random": {"linestyle": (0, (5, 3.5)), "linewidth": 1.6},
    "oracle": {"linestyle": (0, (0.1, 3)), "linewidth": 2.4, "dash_capstyle": "round"},
}


def require() -> None:
    """Refuse early, before any work, when matplotlib is not installed (ConfigError: the
    installation lacks an extra; exit 4)."""
    if importlib.util.find_spec("matplotlib") is None:
        raise ConfigError(MISSING)


def png(evaluations: Sequence[Evaluation], title: str, *, dpi: int = 150) -> bytes:
    """The chart as PNG bytes."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FixedLocator, PercentFormatter
    except ImportError:
        raise ConfigError(MISSING) from None
    fig = figure(evaluations, title)
    canvas_figure = Figure(figsize=(10.4, 5.6), dpi=dpi, layout="constrained")
    FigureCanvasAgg(canvas_figure)
    axes = canvas_figure.add_subplot()
    for ref in fig.references:
        axes.axhline(
            ref.quality,
            color=REFERENCE_COLOUR,
            linewidth=1.0,
            linestyle=":" if ref.dotted else "-",
            zorder=1,
        )
        axes.annotate(
            ref.label,
            (0.0 if ref.side == "left" else 1.0, ref.quality),
            xycoords=("axes fraction", "data"),
            xytext=(5 if ref.side == "left" else -5, 3),
            textcoords="offset points",
            ha=ref.side,
            va="bottom",
            fontsize=8,
            color="#666666",
            zorder=4,
            bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"},
        )
    for series in fig.series:
        axes.plot(
            [share * 100 for share in series.shares],
            series.qualities,
            color=series.colour,
            label=f"{series.name}\n{series.detail}",
            zorder=3,
            **_LINES[series.style],  # type: ignore[arg-type]
        )
    axes.set_xlim(0, 100)
    axes.set_ylim(fig.y_low, fig.y_high)
    axes.xaxis.set_major_locator(FixedLocator([10.0 * step for step in range(11)]))
    axes.xaxis.set_major_formatter(PercentFormatter(decimals=0))
    axes.yaxis.set_major_locator(FixedLocator(fig.y_ticks))
    axes.yaxis.set_major_formatter(f"{{x:.{fig.y_decimals}f}}")
    axes.grid(True, color="#e6e6e6", linewidth=0.8, zorder=0)
    axes.set_axisbelow(True)
    axes.set_xlabel(X_LABEL)
    axes.set_ylabel(Y_LABEL)
    axes.set_title(fig.title, fontweight="bold")
    axes.legend(
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        frameon=False,
        labelspacing=1.0,
        handlelength=2.6,
        fontsize=9,
    )
    buffer = io.BytesIO()
    canvas_figure.savefig(buffer, format="png", facecolor="white")
    return buffer.getvalue()
