"""Figures of gradient decay across time: ‖∂L/∂h_t‖ by lag, by training step and lag, the
connectivity of outputs to earlier inputs, and the LSTM's cell-state path against its hidden path
(frames and conventions: ``seqmem.report.common``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from seqmem.report.common import (
    BAND,
    cell_handles,
    facet_column,
    facets_of,
    label_outer,
    panel_title,
    phases_present,
    positive_rows,
    probe_rows,
    seed_lines,
    shared_legend,
    with_log10,
)
from seqmem.report.style import cell_color, cell_order, new_figure, styled
from seqmem.report.ticks import integer_ticks, log10_axis, padded_limits

__all__ = ["connectivity_heatmap", "gradient_decay", "gradient_heatmap", "lstm_internals"]


# --------------------------------------------------------------------------- decay by lag


def _bound_curves(analysis: pd.DataFrame, grad: pd.DataFrame) -> pd.DataFrame:
    """Pascanu bound g0 * b**k per run and phase, k over the run's measured lags, as log10."""
    bound = (
        analysis[analysis["quantity"] == "gradient_bound"] if "quantity" in analysis else analysis.iloc[0:0]
    )
    bound = positive_rows(bound)
    if bound.empty or grad.empty:
        return pd.DataFrame(columns=["run_id", "phase", "cell", "lag", "log10"])
    keys = ["run_id", "phase", "step"]
    per_step = bound.groupby(keys, as_index=False)["value"].first().rename(columns={"value": "b"})
    g0 = grad[grad["lag"] == 0].groupby(keys, as_index=False)["value"].mean().rename(columns={"value": "g0"})
    curves = grad[keys + ["cell", "lag"]].merge(per_step, on=keys).merge(g0, on=keys)
    log_bound = np.log10(curves["g0"]) + curves["lag"].astype(float) * np.log10(curves["b"])
    return curves.assign(log10=log_bound)[["run_id", "phase", "cell", "lag", "log10"]]


@styled
def gradient_decay(analysis: pd.DataFrame) -> Figure | None:
    """‖dL/dh_t‖ vs lag (log scale), one line per cell, rows: condition, columns: init / final.

    The Pascanu et al. (2013) bound g0·b^k (``gradient_bound`` rows, tanh/ReLU RNNs) is dashed
    in the cell's colour.  Returns None without ``grad_norm`` rows at init or final.
    """
    grad = probe_rows(analysis, "grad_norm")
    grad = with_log10(grad) if not grad.empty else grad
    phases = phases_present(grad) if not grad.empty else []
    if not phases:
        return None
    grad = grad[grad["phase"].isin(phases)]
    bounds = _bound_curves(analysis, grad)
    facets = facets_of(grad)
    cells = cell_order(grad["cell"])
    fig, axes = new_figure(len(facets), len(phases), panel=(4.6, 3.2))
    for row, (condition, rows) in enumerate(facets):
        limits = padded_limits(rows["log10"])  # the bound may grow or vanish far beyond the data
        for col, phase in enumerate(phases):
            ax = axes[row, col]
            panel = rows[rows["phase"] == phase]
            seed_lines(ax, panel, "lag", cells)
            panel_bounds = bounds[bounds["run_id"].isin(panel["run_id"]) & (bounds["phase"] == phase)]
            if not panel_bounds.empty:
                seed_lines(ax, panel_bounds, "lag", cells, errorbar=None, linestyle="--", linewidth=1.2)
            ax.set_ylim(*limits)
            ax.set_title(panel_title(condition, phase))
            integer_ticks(ax)
            log10_axis(ax.yaxis)
    label_outer(axes, "lag k = reference step − t (steps)", "‖∂L/∂h_t‖ (batch mean, log scale)")
    handles = cell_handles(cells)
    if not bounds.empty:
        handles.append(
            Line2D([], [], color="0.3", linestyle="--", linewidth=1.2, label="Pascanu bound g₀·bᵏ")
        )
    shared_legend(fig, handles)
    fig.suptitle(f"Gradient decay across time (lines: geometric mean, {BAND})")
    return fig


# --------------------------------------------------------------------------- heatmap


def _label_step(count: int, most: int = 6) -> int:
    """Label every n-th row or column of a heatmap so that at most ``most`` labels show."""
    return max(1, math.ceil(count / most))


def _heatmap(ax: Axes, grid: pd.DataFrame, limits: tuple[float, float]) -> None:
    """``grid`` (log10 values; NaN cells left blank) on the report's colour scale ``limits``."""
    sns.heatmap(
        grid,
        vmin=limits[0],
        vmax=limits[1],
        cmap="mako",
        cbar=False,
        xticklabels=_label_step(grid.shape[1]),
        yticklabels=_label_step(grid.shape[0]),
        rasterized=True,
        ax=ax,
    )
    ax.tick_params(axis="both", labelrotation=0)
    ax.grid(False)  # the theme's grid would show through blank (NaN) cells


def _log_colorbar(fig: Figure, axes: np.ndarray, label: str, **options: object) -> None:
    """One colour bar for every heatmap panel of ``axes``, its ticks read as powers of ten."""
    drawn = [ax.collections[0] for ax in axes.flat if ax.collections]
    if drawn:
        colorbar = fig.colorbar(drawn[-1], ax=axes, shrink=0.8, label=label, **options)
        log10_axis(colorbar.ax.yaxis)


@styled
def gradient_heatmap(analysis: pd.DataFrame) -> Figure | None:
    """log10 ‖dL/dh_t‖ over (training step × lag), one panel per cell (columns) and condition (rows).

    Seeds are averaged in log space; one colour scale for all panels.  None without ``grad_norm``.
    """
    grad = probe_rows(analysis, "grad_norm")
    if grad.empty or "step" not in grad:
        return None
    grad = with_log10(grad)
    if grad.empty:
        return None
    facets = facets_of(grad)
    cells = cell_order(grad["cell"])
    limits = float(grad["log10"].min()), float(grad["log10"].max())
    fig, axes = new_figure(len(facets), len(cells), panel=(3.4, 3.0))
    for row, (condition, rows) in enumerate(facets):
        for col, cell in enumerate(cells):
            ax = axes[row, col]
            panel = rows[rows["cell"] == cell]
            ax.set_title(f"{cell}" + (f" — {condition}" if condition else ""), color=cell_color(cell))
            if panel.empty:
                ax.set_axis_off()
                continue
            _heatmap(
                ax, panel.pivot_table(index="step", columns="lag", values="log10", aggfunc="mean"), limits
            )
    label_outer(axes, "lag k (steps)", "training step")
    _log_colorbar(fig, axes, "‖∂L/∂h_t‖ (log scale)")
    fig.suptitle("Where memory appears during training: gradient norm by training step and lag")
    return fig


# The colour scale of the connectivity heatmap: these percentiles of all its values, so that a
# few cells decades below the rest (a tanh RNN's far past) do not wash out every other panel.
CONNECTIVITY_PERCENTILES = (2.0, 98.0)


@styled
def connectivity_heatmap(analysis: pd.DataFrame) -> Figure | None:
    """Madsen's (2019) connectivity ‖∂y_t′/∂x_t‖ as heatmaps of output step t′ (rows) × input step
    t (columns), one panel per cell (columns), per condition at initialisation and after
    training (rows).

    The probe's batch mean (stat 'mean') per run, averaged over seeds in log space; one colour
    scale for all panels, from the 2nd to the 98th percentile of all values shown (arrows on
    the colour bar: values beyond are drawn in its end colours).  Above the diagonal (inputs after
    the output) stays blank.  None without ``connectivity`` rows at init or final.
    """
    rows = probe_rows(analysis, "connectivity", ("mean",))
    rows = with_log10(rows) if not rows.empty else rows
    phases = phases_present(rows) if not rows.empty else []
    if not phases:
        return None
    rows = rows[rows["phase"].isin(phases)].assign(output_step=rows["t"] + rows["lag"])
    cells = cell_order(rows["cell"])
    panels = [(condition, phase) for condition, _rows in facets_of(rows) for phase in phases]
    grids = {}  # (panel row, cell) -> output step x input step, mean log10 over seeds
    for row, (condition, phase) in enumerate(panels):
        selected = _select(rows, condition, phase)
        for cell, panel in selected.groupby("cell", observed=True):
            grids[row, cell] = panel.pivot_table(
                index="output_step", columns="t", values="log10", aggfunc="mean"
            )
    shown = np.concatenate([grid.to_numpy().ravel() for grid in grids.values()])
    limits = tuple(float(v) for v in np.nanpercentile(shown, CONNECTIVITY_PERCENTILES))
    fig, axes = new_figure(len(panels), len(cells), panel=(3.2, 3.0))
    for row, (condition, phase) in enumerate(panels):
        for col, cell in enumerate(cells):
            ax = axes[row, col]
            ax.set_title(f"{cell}\n{panel_title(condition, phase)}", color=cell_color(cell))
            if (row, cell) in grids:
                _heatmap(ax, grids[row, cell], limits)
            else:
                ax.set_axis_off()
    label_outer(axes, "input step t", "output step t′")
    _log_colorbar(fig, axes, "‖∂y_t′/∂x_t‖ (log scale)", extend="both")
    fig.suptitle("Connectivity: how strongly each output depends on each earlier input (Madsen 2019)")
    return fig


# --------------------------------------------------------------------------- LSTM internals


def _cell_path(analysis: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(cell-state path rows, hidden path rows, what they measure), with log10 columns: Jacobian
    norms if recorded, else gradient norms; restricted to cells that have a cell state."""
    for cell_q, hidden_q, what in (
        ("cell_jacobian_spectral", "jacobian_spectral", "‖∂c_T/∂c_t‖₂, ‖∂h_T/∂h_t‖₂"),
        ("cell_grad_norm", "grad_norm", "‖∂L/∂c_t‖, ‖∂L/∂h_t‖"),
    ):
        cell_rows = probe_rows(analysis, cell_q)
        if not cell_rows.empty:
            cell_rows = with_log10(cell_rows)
            hidden = probe_rows(analysis, hidden_q)
            hidden = with_log10(hidden) if not hidden.empty else hidden
            return cell_rows, hidden[hidden["cell"].isin(cell_rows["cell"])], what
    empty = analysis.iloc[0:0]
    return empty, empty, ""


def _select(frame: pd.DataFrame, condition: str, phase: str) -> pd.DataFrame:
    """The rows of one facet (as labelled by ``facets_of``) and phase."""
    column = facet_column(frame)
    keep = frame["phase"] == phase
    if column and condition:
        keep &= frame[column].astype(str) == condition
    return frame[keep]


@styled
def lstm_internals(analysis: pd.DataFrame) -> Figure | None:
    """LSTM internals per condition (rows) at init / final (columns): the forget-gate distribution
    (median and q10–q90 over units and batch) by lag, and the cell-state path dc_T/dc_t (solid)
    vs the hidden path dh_T/dh_t (dashed), log scale.  None when no run recorded either."""
    gate = probe_rows(analysis, "gate_f", ("median", "mean"))
    cell_path, hidden_path, what = _cell_path(analysis)
    kinds = [k for k, rows in (("gate", gate), ("path", cell_path)) if not rows.empty]
    if not kinds:
        return None
    everything = pd.concat([gate, cell_path], ignore_index=True)
    phases = phases_present(everything)
    if not phases:
        return None
    cells = cell_order(everything["cell"])
    quantiles = analysis[(analysis["quantity"] == "gate_f") & analysis["stat"].isin(["q10", "q90"])]
    panels = [(condition, kind) for condition, _rows in facets_of(everything) for kind in kinds]
    fig, axes = new_figure(len(panels), len(phases), panel=(4.6, 3.0))
    for row, (condition, kind) in enumerate(panels):
        for col, phase in enumerate(phases):
            ax = axes[row, col]
            ax.set_title(panel_title(condition, phase))
            if kind == "gate":
                q = _select(quantiles, condition, phase)
                for cell in cell_order(q["cell"]):  # the q10–q90 band is precomputed by the probe
                    spread = q[q["cell"] == cell].pivot_table(index="lag", columns="stat", values="value")
                    if {"q10", "q90"} <= set(spread.columns):
                        ax.fill_between(
                            spread.index,
                            spread["q10"],
                            spread["q90"],
                            color=cell_color(cell),
                            alpha=0.2,
                            linewidth=0,
                        )
                seed_lines(ax, _select(gate, condition, phase), "lag", cells, y="value", errorbar=None)
                ax.set_ylim(-0.02, 1.02)
                ax.set_ylabel("forget gate f_t (median, q10–q90)" if col == 0 else "")
                ax.set_xlabel("lag k (steps)")
            else:
                seed_lines(ax, _select(cell_path, condition, phase), "lag", cells)
                seed_lines(ax, _select(hidden_path, condition, phase), "lag", cells, linestyle="--")
                log10_axis(ax.yaxis)
                ax.set_ylabel(f"{what} (log scale)" if col == 0 else "")
                ax.set_xlabel("lag k (steps)")
            integer_ticks(ax)
    handles = cell_handles(cells) + [
        Line2D([], [], color="0.3", label="cell-state path c"),
        Line2D([], [], color="0.3", linestyle="--", label="hidden path h"),
    ]
    shared_legend(fig, handles)
    fig.suptitle(f"LSTM internals: forget gates and the constant error carousel (path {BAND})")
    return fig
