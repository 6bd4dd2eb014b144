"""What the report's figures share: the frames they read, their rows, panels, lines and legends.

Inputs follow the frames of ``seqmem.results.load_study``:
- ``analysis``: probe rows ``run_id, <config columns>, step, sequences_seen, phase`` and the
  columns of ``seqmem.analysis.COLUMNS`` (quantity, stat, t, lag, k, sample, n, value; rows
  of older versions are read through ``seqmem.analysis.upgrade_probe_rows``);
- ``metrics``: training history ``run_id, <config columns>, step, sequences_seen, loss_ratio, ...``;
- ``runs``: one row per run ``run_id, status, solved, final_<metric>, <config columns>``.
Config columns used here: ``cell``, ``seed``, ``task`` and the task parameters (``delay``,
``length``, ...).  Panels are split by a ``condition`` column when the frame has one (see
``seqmem.report.conditions``), else by ``task``.  A figure that has no data to show returns
``None`` instead of raising.

Data are drawn with seaborn (``hue="cell"`` with the fixed ``style.palette``); matplotlib only lays
out panels, legends and ticks.  Seeds are replicates.  Norms and loss ratios span many decades,
so they are averaged in log space: seaborn plots a ``log10`` column on a linear axis whose ticks
read as the quantity itself (``seqmem.report.ticks``); lines are the mean of log10 over seeds
(the geometric mean), bands ±1 standard error of that mean.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from seqmem.report.style import PHASE_LABELS, by_cell, cell_color

__all__ = [
    "BAND",
    "BASELINE_STYLE",
    "baseline_line",
    "cell_handles",
    "facet_column",
    "facets_of",
    "label_outer",
    "panel_title",
    "phases_present",
    "positive_rows",
    "probe_rows",
    "seed_lines",
    "shared_legend",
    "with_log10",
]

# With the 2-5 seeds a study affords, a 95% t-interval is mostly the t quantile (12.7 for two
# seeds) and hides the curves; the standard error shows the seed spread honestly.
BAND = "band: ±1 standard error over seeds"


# --------------------------------------------------------------------------- panels


def _natural_key(label: object) -> list:
    """Sort key reading the numbers inside a label as numbers ("length=30" before "length=120")."""
    parts = re.split(r"(\d+(?:\.\d+)?)", str(label))
    return [(0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts)]


def facet_column(frame: pd.DataFrame) -> str | None:
    """The column panels are split by: ``condition``, else ``task``, else None."""
    return "condition" if "condition" in frame else "task" if "task" in frame else None


def facets_of(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(label, rows) per condition, in the condition order; one facet '' when there is none."""
    column = facet_column(frame)
    if column is None:
        return [("", frame)]
    values = frame[column]
    categorical = isinstance(values.dtype, pd.CategoricalDtype)
    order = values.cat.categories if categorical else sorted(values.unique(), key=_natural_key)
    return [(str(v), frame[values == v]) for v in order if (values == v).any()]


# --------------------------------------------------------------------------- rows


def probe_rows(
    analysis: pd.DataFrame, quantity: str, stats_: Sequence[str] = ("mean", "median")
) -> pd.DataFrame:
    """Rows of one probe quantity with the first available statistic."""
    needed = {"quantity", "stat", "value", "phase", "lag", "cell"}
    if analysis.empty or not needed <= set(analysis.columns):
        return analysis.iloc[0:0]
    rows = analysis[analysis["quantity"] == quantity]
    for stat in stats_:
        chosen = rows[rows["stat"] == stat]
        if not chosen.empty:
            return chosen
    return rows.iloc[0:0]


def positive_rows(frame: pd.DataFrame, column: str = "value") -> pd.DataFrame:
    """The rows whose ``column`` is finite and positive: what a log axis can show."""
    values = frame[column].to_numpy(dtype=float)
    return frame[np.isfinite(values) & (values > 0)]


def with_log10(frame: pd.DataFrame, column: str = "value") -> pd.DataFrame:
    """The positive, finite rows of ``frame`` with a ``log10`` column: seeds are averaged over it,
    since an arithmetic mean of norms 30 decades apart would be the largest seed alone."""
    rows = positive_rows(frame, column)
    return rows.assign(log10=np.log10(rows[column].to_numpy(dtype=float)))


def phases_present(frame: pd.DataFrame, wanted: Sequence[str] = ("init", "final")) -> list[str]:
    """The phases of ``wanted`` that ``frame`` has rows for, in that order."""
    present = set(frame["phase"])
    return [p for p in wanted if p in present]


def seed_lines(
    ax: Axes,
    data: pd.DataFrame,
    x: str,
    cells: Sequence[str],
    y: str = "log10",
    errorbar: str | None = "se",
    **line_kws: object,
) -> None:
    """One line per cell in its colour: the mean of ``y`` over the rows (seeds) at each ``x``,
    band ±1 standard error (``errorbar=None``: no band)."""
    if data.empty:  # seaborn would warn that the palette has no hue to map
        return
    sns.lineplot(
        data=data,
        x=x,
        y=y,
        estimator="mean",
        errorbar=errorbar,
        ax=ax,
        **by_cell(cells),
        **line_kws,
    )


# --------------------------------------------------------------------------- lines, labels, legends


def cell_handles(cells: Sequence[str]) -> list[Line2D]:
    """Legend entries: one line per cell, in its colour."""
    return [Line2D([], [], color=cell_color(c), label=c) for c in cells]


def shared_legend(fig: Figure, handles: list, title: str = "cell") -> None:
    # Outside the panels, so it never covers data.
    fig.legend(handles=handles, title=title, loc="outside right center", frameon=False)


def label_outer(axes: np.ndarray, xlabel: str, ylabel: str) -> None:
    """Axis labels on the bottom row and left column only (seaborn labels every panel it draws)."""
    for (row, col), ax in np.ndenumerate(axes):
        ax.set_xlabel(xlabel if row == axes.shape[0] - 1 else "")
        ax.set_ylabel(ylabel if col == 0 else "")


def panel_title(condition: str, phase: str) -> str:
    """'<condition> — at initialisation', or the phase alone when there is no condition."""
    phase_text = PHASE_LABELS.get(phase, phase)
    return f"{condition} — {phase_text}" if condition else phase_text


BASELINE_STYLE = {"color": "0.2", "linestyle": ":", "linewidth": 1.2}


def baseline_line(ax: Axes, y: float = 0.0) -> None:
    """The memoryless baseline (loss ratio 1, i.e. log10 0) or the no-decay factor 1."""
    ax.axhline(y, **BASELINE_STYLE)
