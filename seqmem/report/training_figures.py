"""Figures of training outcomes: learning curves against the memoryless baseline, and success
against the task's difficulty (frames and conventions: ``seqmem.report.common``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from seqmem.report.common import (
    BAND,
    BASELINE_STYLE,
    baseline_line,
    cell_handles,
    facets_of,
    seed_lines,
    shared_legend,
    with_log10,
)
from seqmem.report.conditions import STEP_PARAMETERS, add_conditions, difficulty_column, format_value
from seqmem.report.style import by_cell, cell_order, new_figure, styled
from seqmem.report.ticks import log10_axis

__all__ = ["learning_curves", "success_vs_difficulty"]


# --------------------------------------------------------------------------- learning curves


_LOSS_CLIP = 3.0  # log10 of the highest loss / baseline a learning-curve panel shows


@styled
def learning_curves(metrics: pd.DataFrame) -> Figure | None:
    """loss / memoryless-baseline loss vs sequences seen (log y), one line per cell, a panel per
    condition; the dotted line at 1 is the memoryless baseline.  None without ``loss_ratio``."""
    if metrics.empty or not {"loss_ratio", "sequences_seen", "cell"} <= set(metrics.columns):
        return None
    data = with_log10(metrics, "loss_ratio")
    if data.empty:
        return None
    facets = facets_of(data)
    cells = cell_order(data["cell"])
    ncols = min(3, len(facets))
    nrows = -(-len(facets) // ncols)
    fig, axes = new_figure(nrows, ncols, panel=(4.4, 3.2))
    clipped = False
    for ax, (condition, rows) in zip(axes.flat, facets, strict=False):
        seed_lines(ax, rows, "sequences_seen", cells)
        baseline_line(ax)
        if ax.get_ylim()[1] > _LOSS_CLIP:  # a diverging run would squash every other curve flat
            ax.set_ylim(top=_LOSS_CLIP)
            clipped = True
        ax.set_title(condition)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
        log10_axis(ax.yaxis, plain=True)
    for ax in axes.flat[len(facets) :]:
        ax.set_axis_off()
    for i, ax in enumerate(axes.flat[: len(facets)]):
        lowest = i + ncols >= len(facets)  # the lowest panel of its column
        ax.set_xlabel("training sequences seen" if lowest else "")
        ax.set_ylabel("loss / memoryless baseline (log scale)" if i % ncols == 0 else "")
    handles = cell_handles(cells)
    handles.append(Line2D([], [], label="memoryless baseline", **BASELINE_STYLE))
    shared_legend(fig, handles)
    clip = f"; clipped at {10**_LOSS_CLIP:,.0f}x the baseline" if clipped else ""
    fig.suptitle(f"Learning curves (lines: geometric mean, {BAND}{clip})")
    return fig


# --------------------------------------------------------------------------- success vs difficulty


def _difficulty_facets(runs: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """(condition, difficulty column, rows) per task and setting, for tasks whose difficulty varies."""
    groups = runs.groupby("task", sort=True) if "task" in runs else [("", runs)]
    facets = []
    for _task, group in groups:
        difficulty = difficulty_column(group)
        if difficulty is not None:
            labelled = add_conditions(group, group, exclude=[difficulty])
            facets += [(condition, difficulty, rows) for condition, rows in facets_of(labelled)]
    return facets


def _points(ax: Axes, data: pd.DataFrame, x: str, y: str, cells: Sequence[str], **point_kws: object) -> None:
    """One marker per cell and x level in the cell's colour, no error bars (``point_kws``: x order,
    estimator, dodge, ...)."""
    sns.pointplot(
        data=data,
        x=x,
        y=y,
        errorbar=None,
        linewidth=1.8,
        markersize=5,
        ax=ax,
        **by_cell(cells),
        **point_kws,
    )


@styled
def success_vs_difficulty(runs: pd.DataFrame) -> Figure | None:
    """Solve rate (top) and median final loss / baseline (bottom, log) vs the varying task
    parameter (``difficulty_column``, per task), one line per cell, a column per task.  Failed
    runs are left out.  None when no task parameter varies or there is no ``solved`` column."""
    if runs.empty or not {"run_id", "cell", "solved"} <= set(runs.columns):
        return None
    done = runs[runs["status"] != "failed"] if "status" in runs else runs
    done = done.assign(solved=done["solved"].astype("boolean").fillna(False).astype(float))
    facets = _difficulty_facets(done)
    if not facets:
        return None
    has_ratio = "final_loss_ratio" in done and (done["final_loss_ratio"].to_numpy(float) > 0).any()
    # only the cells drawn: a cell that ran only tasks of fixed difficulty gets no legend entry
    cells = cell_order(pd.concat([rows["cell"] for _, _, rows in facets]))
    # Cells share x positions: a small dodge keeps lines at 0 or 1 from hiding each other.
    dodge = 0.16 if len(cells) > 1 else False
    fig, axes = new_figure(
        2 if has_ratio else 1, len(facets), panel=(max(4.4, 7.0 / len(facets)), 3.0), sharex="col"
    )
    for col, (condition, difficulty, rows) in enumerate(facets):
        order = [format_value(v) for v in np.sort(rows[difficulty].unique())]
        rows = rows.assign(level=rows[difficulty].map(format_value))
        _points(axes[0, col], rows, "level", "solved", cells, order=order, estimator="mean", dodge=dodge)
        axes[0, col].set_title(condition)
        axes[0, col].set_ylim(-0.05, 1.05)
        if has_ratio:
            ratio = with_log10(rows, "final_loss_ratio")
            if not ratio.empty:  # median of log10 = log10 of the median (odd counts; else geometric)
                _points(
                    axes[1, col], ratio, "level", "log10", cells, order=order, estimator="median", dodge=dodge
                )
            baseline_line(axes[1, col])
            log10_axis(axes[1, col].yaxis, plain=True)
        unit = " (steps)" if difficulty in STEP_PARAMETERS else ""
        for row, ax in enumerate(axes[:, col]):
            ax.set_xlabel(f"{difficulty}{unit}" if row == axes.shape[0] - 1 else "")
            ax.set_ylabel("")
    axes[0, 0].set_ylabel("solve rate (fraction of seeds)")
    if has_ratio:
        axes[1, 0].set_ylabel("final loss / baseline (median, log)")
    handles = cell_handles(cells)
    if has_ratio:
        handles.append(Line2D([], [], label="memoryless baseline", **BASELINE_STYLE))
    shared_legend(fig, handles)
    fig.suptitle("Success vs difficulty")
    return fig
