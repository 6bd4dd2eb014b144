"""Decay fits per run and their figure: the fitted decay factor and memory horizon per cell, at
initialisation and after training (frames and conventions: ``seqmem.report.common``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from seqmem.analysis.fits import fit_decay, mean_t_interval
from seqmem.report.common import (
    BASELINE_STYLE,
    baseline_line,
    facets_of,
    positive_rows,
    probe_rows,
    shared_legend,
)
from seqmem.report.style import by_cell, cell_color, cell_order, new_figure, styled
from seqmem.report.ticks import log10_axis, padded_limits

__all__ = ["decay_fits", "memory_horizon"]


def decay_fits(analysis: pd.DataFrame) -> pd.DataFrame:
    """One decay fit per run and phase (init, final) of its ``grad_norm`` profile by lag.

    Uses ``seqmem.analysis.fit_decay``; returns columns run_id, cell, phase, decay_factor,
    half_life, memory_horizon, gradient_bound (NaN unless a tanh/ReLU RNN), plus ``condition``,
    ``task`` and ``seed`` when present.  A run whose fit fails is left out.
    """
    grad = probe_rows(analysis, "grad_norm", ("mean",))
    columns = ["run_id", "cell", "phase", "decay_factor", "half_life", "memory_horizon", "gradient_bound"]
    if grad.empty:
        return pd.DataFrame(columns=columns)
    grad = positive_rows(grad[grad["phase"].isin(["init", "final"])])
    bound = analysis[analysis["quantity"] == "gradient_bound"]
    extra = [c for c in ("condition", "task", "seed") if c in grad]
    rows = []
    for (run_id, phase), profile in grad.groupby(["run_id", "phase"], sort=False, observed=True):
        profile = profile[profile["step"] == profile["step"].max()]
        try:
            fit = fit_decay(profile, "grad_norm", replicate=None)
        except (ValueError, RuntimeError, np.linalg.LinAlgError):
            continue  # too few or degenerate points: nothing to fit
        b = bound.loc[(bound["run_id"] == run_id) & (bound["phase"] == phase), "value"]
        first = profile.iloc[0]
        rows.append(
            {
                "run_id": run_id,
                "cell": first["cell"],
                "phase": phase,
                **{c: float(fit[c].iloc[0]) for c in ("decay_factor", "half_life", "memory_horizon")},
                "gradient_bound": float(b.iloc[0]) if len(b) else np.nan,
                **{c: first[c] for c in extra},
            }
        )
    fits = pd.DataFrame(rows, columns=columns + extra)
    if "condition" in fits and isinstance(grad["condition"].dtype, pd.CategoricalDtype):
        fits["condition"] = pd.Categorical(
            fits["condition"], categories=grad["condition"].cat.categories, ordered=True
        )
    return fits


def _log_interval(values: np.ndarray, ci_low: float, ci_high: float) -> tuple[float, float, float]:
    """log10 of the centre and 95% interval of positive values: over several runs the geometric
    mean and a t-interval in log space (both quantities are positive and multiplicative: the
    interval never crosses 0); for a single run, the fit's own interval when it has one."""
    logs = np.log10(values)
    if len(logs) == 1:
        own = [np.log10(b) if np.isfinite(b) and b > 0 else logs[0] for b in (ci_low, ci_high)]
        return float(logs[0]), float(own[0]), float(own[1])
    return mean_t_interval(logs, 0.95)


_FIT_PANELS = (
    ("decay_factor", "decay factor per step", False),
    ("memory_horizon", "memory horizon (steps, log scale)", True),
)
_PHASE_MARKERS = {"init": ("none", -0.15), "final": ("full", 0.15)}  # marker fill, x offset
_NO_ROWS = pd.DataFrame(columns=["cell", "phase", "x", "y"])


def _fit_points(
    rows: pd.DataFrame, column: str, log: bool, x: dict[tuple[str, str], float]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, summaries) of one fitted quantity: columns cell, phase, x (placed per cell and
    phase), y (log10 if ``log``); finite positive values only.

    A summary is three rows per cell and phase, the (low, centre, high) of ``_log_interval``, so
    that seaborn's pointplot with estimator median and errorbar ("pi", 100), i.e. min to max,
    draws exactly that centre and 95% interval."""
    runs, summaries = [_NO_ROWS], [_NO_ROWS]
    for (cell, phase), group in rows.groupby(["cell", "phase"], observed=True):
        values = group[column].to_numpy(dtype=float)
        finite = values[np.isfinite(values) & (values > 0)]
        if len(finite) == 0:
            continue
        fit_ci = [
            group[f"{column}_ci_{end}"].iloc[0] if f"{column}_ci_{end}" in group else np.nan
            for end in ("low", "high")
        ]
        ends = np.array(_log_interval(finite, *fit_ci))
        place = {"cell": cell, "phase": phase, "x": x[cell, phase]}
        runs.append(pd.DataFrame({**place, "y": np.log10(finite) if log else finite}))
        summaries.append(pd.DataFrame({**place, "y": ends if log else 10**ends}))
    return pd.concat(runs, ignore_index=True), pd.concat(summaries, ignore_index=True)


def _markers(data: pd.DataFrame, y: str, **point_kws: object) -> None:
    """Unconnected markers of ``y`` at the numeric positions in ``data["x"]`` (cells and phases
    placed by ``_fit_panel``); ``point_kws``: estimator, error bars, marker style, hue."""
    sns.pointplot(data=data, x="x", y=y, native_scale=True, markersize=7, linestyle="none", **point_kws)


def _fit_panel(ax: Axes, rows: pd.DataFrame, column: str, log: bool, cells: Sequence[str]) -> None:
    """One fitted quantity per cell: runs as a swarm, the mean and 95% CI hollow at init and
    filled after training, the Pascanu bound as ×, an infinite value as ▲ on the top edge."""
    x = {(c, p): i + offset for i, c in enumerate(cells) for p, (_fill, offset) in _PHASE_MARKERS.items()}
    common = {**by_cell(cells), "ax": ax}
    runs, summary = _fit_points(rows, column, log, x)
    for phase, (fill, _offset) in _PHASE_MARKERS.items():
        means = summary[summary["phase"] == phase]
        if not means.empty:
            _markers(
                means,
                "y",
                estimator="median",
                errorbar=("pi", 100),
                marker="o",
                fillstyle=fill,
                linewidth=1.4,
                capsize=0.08,
                **common,
            )
    if not runs.empty:  # numeric x (native_scale) puts each phase beside its cell's tick
        sns.swarmplot(data=runs, x="x", y="y", native_scale=True, size=3.5, alpha=0.6, zorder=3, **common)
    if column == "decay_factor" and "gradient_bound" in rows:
        bound = rows[np.isfinite(rows["gradient_bound"].to_numpy(dtype=float))]
        if not bound.empty:
            bound = bound.assign(x=[x[key] for key in zip(bound["cell"], bound["phase"], strict=True)])
            _markers(bound, "gradient_bound", estimator="mean", errorbar=None, marker="x", **common)
    infinite = rows[np.isinf(rows[column].to_numpy(dtype=float))]
    for cell, phase in infinite[["cell", "phase"]].drop_duplicates().itertuples(index=False):
        # No decay within the fit: a marker pinned to the top edge, not a point at infinity.
        ax.plot(
            [x[cell, phase]],
            [0.96],
            marker="^",
            color=cell_color(cell),
            fillstyle=_PHASE_MARKERS[phase][0],
            markersize=9,
            linestyle="none",
            transform=ax.get_xaxis_transform(),
            clip_on=False,
        )
    if log:
        log10_axis(ax.yaxis, plain=True)
        shown = pd.concat([runs["y"], summary["y"]])
        if not shown.empty:  # a factor 1.5 of room: one point alone gives no range
            ax.set_ylim(*padded_limits(shown, pad=math.log10(1.5)))
    else:
        baseline_line(ax, 1.0)
        # A decay factor lives in (0, ~1.5]; with 2-3 seeds a 95% t-interval can reach 10^4 and
        # flatten every point, so the axis follows the runs and bounds and wider intervals clip.
        shown = [runs["y"].to_numpy(dtype=float)] if not runs.empty else []
        if "gradient_bound" in rows:
            shown.append(rows["gradient_bound"].to_numpy(dtype=float))
        finite = np.concatenate(shown)[np.isfinite(np.concatenate(shown))] if shown else np.array([])
        ax.set_ylim(0.0, max(1.15, 1.1 * finite.max()) if finite.size else 1.15)


@styled
def memory_horizon(fits: pd.DataFrame) -> Figure | None:
    """Fitted decay factor (top) and memory horizon (bottom, log) per cell at init (hollow) and
    after training (filled): small dots are runs, big markers their geometric mean with a 95%
    t-interval (log space).

    ``fits`` has one row per run (or per cell) and phase: cell, phase, decay_factor,
    memory_horizon, optional ``*_ci_low``/``*_ci_high``, ``gradient_bound`` (drawn as ×) and
    ``condition``/``task``.  An infinite horizon is drawn as ▲ at the top.  None when empty.
    """
    if fits is None or fits.empty or not {"cell", "phase", "decay_factor", "memory_horizon"} <= set(fits):
        return None
    fits = fits[fits["phase"].isin(list(_PHASE_MARKERS))]
    if fits.empty:
        return None
    facets = facets_of(fits)
    cells = cell_order(fits["cell"])
    fig, axes = new_figure(2, len(facets), panel=(max(3.2, 0.75 * len(cells) + 1.2), 3.0), sharex=True)
    for col, (condition, rows) in enumerate(facets):
        for row, (column, label, log) in enumerate(_FIT_PANELS):
            _fit_panel(axes[row, col], rows, column, log, cells)
            axes[row, col].set_xlabel("")
            axes[row, col].set_ylabel(label if col == 0 else "")
        axes[0, col].set_title(condition)
    for ax in axes[-1, :]:
        ax.set_xticks(range(len(cells)), cells, rotation=30 if len(cells) > 4 else 0)
        ax.set_xlim(-0.6, len(cells) - 0.4)
    handles = [
        Line2D([], [], marker="o", fillstyle="none", color="0.3", linestyle="none", label="init"),
        Line2D([], [], marker="o", color="0.3", linestyle="none", label="final"),
        Line2D([], [], marker="x", color="0.3", linestyle="none", label="Pascanu bound b"),
        Line2D([], [], marker="^", color="0.3", linestyle="none", label="no decay (horizon ∞)"),
        Line2D([], [], label="no decay (factor 1)", **BASELINE_STYLE),
    ]
    shared_legend(fig, handles, title="markers")
    fig.suptitle("Fitted gradient decay per cell (geometric mean and 95% CI over seeds)")
    return fig
