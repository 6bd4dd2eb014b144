"""The report's figures: each a function of tidy DataFrame(s) returning a matplotlib Figure.

Inputs follow the frames of ``seqmem.results.load_study`` (see CONTRACTS.md):
- ``analysis``: probe rows ``run_id, <config columns>, step, sequences_seen, phase, quantity,
  t, lag, stat, value``;
- ``metrics``: training history ``run_id, <config columns>, step, sequences_seen, loss_ratio, ...``;
- ``runs``: one row per run ``run_id, status, solved, final_<metric>, <config columns>``.
Config columns used here: ``cell``, ``seed``, ``task`` and the task parameters (``delay``,
``length``, ...).  Panels are split by a ``condition`` column when the frame has one (see
``add_conditions``: the task plus every setting that varies across the study's runs), else by
``task``.  A figure that has no data to show returns ``None`` instead of raising.

Data are drawn with seaborn (``hue="cell"`` with the fixed ``style.palette``); matplotlib only lays
out panels, legends and ticks.  Seeds are replicates.  Norms and loss ratios span many decades,
so they are averaged in log space: seaborn plots a ``log10`` column on a linear axis whose ticks
read as the quantity itself (10⁻⁶, or 0.5 for ratios); lines are the mean of log10 over seeds
(the geometric mean), bands ±1 standard error of that mean.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import Formatter, Locator, MaxNLocator
from scipy import stats

from seqmem.report.style import PHASE_LABELS, by_cell, cell_color, cell_order, new_figure, styled

__all__ = [
    "add_conditions",
    "condition_labels",
    "config_columns",
    "decay_fits",
    "difficulty_column",
    "format_value",
    "gradient_decay",
    "gradient_heatmap",
    "learning_curves",
    "lstm_internals",
    "memory_horizon",
    "success_vs_difficulty",
]

# Columns of the runs frame that describe a run's outcome, not its configuration.
_OUTCOME_COLUMNS = {
    "run_id",
    "status",
    "steps",
    "sequences_seen",
    "diverged_step",
    "elapsed_s",
    "solved",
    "error",
    "traceback",
}
# Cells are the hue of every figure and seeds are replicates: neither defines a condition.
_NOT_CONDITIONS = {"cell", "seed", "device"}
# TrainConfig fields: when one of these varies it is a condition, but never the task's difficulty.
_TRAIN_FIELDS = {
    "task",
    "hidden_size",
    "optimizer",
    "lr",
    "momentum",
    "batch_size",
    "max_steps",
    "max_sequences",
    "grad_clip",
    "eval_every",
    "eval_batch_size",
    "solve_patience",
    "stop_when_solved",
}
_DIFFICULTY_PREFERENCE = ("delay", "length")
# With the 2-5 seeds a study affords, a 95% t-interval is mostly the t quantile (12.7 for two
# seeds) and hides the curves; the standard error shows the seed spread honestly.
_BAND = "band: ±1 standard error over seeds"


# --------------------------------------------------------------------------- conditions


def _varying(frame: pd.DataFrame, column: str) -> bool:
    # repr() makes unhashable cells (lists, dicts) countable.
    return frame[column].map(repr).nunique() > 1


def config_columns(runs: pd.DataFrame) -> list[str]:
    """The columns of a runs frame that hold configuration (not outcome, not our ``condition``)."""
    outcome = _OUTCOME_COLUMNS | {"condition"}
    return [c for c in runs.columns if c not in outcome and not c.startswith("final_")]


def _condition_columns(runs: pd.DataFrame) -> list[str]:
    return [c for c in config_columns(runs) if c not in _NOT_CONDITIONS and _varying(runs, c)]


def _set_by_cell(runs: pd.DataFrame, column: str) -> bool:
    """Whether ``column`` holds one value per cell (a per-cell override such as Arjovsky et al.'s
    hidden sizes): a property of the cell, shown with it, not a condition of its own."""
    if "cell" not in runs or not _varying(runs, "cell"):
        return False
    return bool((runs.groupby("cell", observed=True)[column].agg(lambda v: v.map(repr).nunique()) == 1).all())


def difficulty_column(runs: pd.DataFrame) -> str | None:
    """The numeric task parameter that varies across runs (``delay``/``length`` first), or None."""
    varying = [
        c
        for c in _condition_columns(runs)
        if c not in _TRAIN_FIELDS
        and pd.api.types.is_numeric_dtype(runs[c])
        and not pd.api.types.is_bool_dtype(runs[c])
    ]
    preferred = [c for c in _DIFFICULTY_PREFERENCE if c in varying]
    return (preferred or varying or [None])[0]


def format_value(value: object) -> str:
    """A config value as shown in labels and tables (floats in %g, missing as —)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    return f"{value:g}" if isinstance(value, float) else str(value)


def condition_labels(runs: pd.DataFrame, exclude: Sequence[str] = ()) -> pd.Series:
    """Per run_id, a label naming its task and every setting that varies across that task's runs
    (other than the cell's own settings: one value per cell, see ``_set_by_cell``).

    Returns an ordered categorical Series (index ``run_id``, name ``condition``), e.g.
    ``"copy, delay=100"``; categories follow the task name, then the numeric order of the
    settings.  Varying settings are found per task, so a study mixing copy (delay) and adding
    (length) never labels an adding run with ``delay=nan``.
    """
    groups = runs.groupby("task", sort=True) if "task" in runs else [("all runs", runs)]
    labels = []
    for task, group in groups:
        columns = [
            c
            for c in _condition_columns(group)
            if c != "task" and c not in exclude and not _set_by_cell(group, c)
        ]
        group = group.sort_values(columns, kind="stable") if columns else group
        label = pd.Series(str(task), index=group.index)
        for column in columns:
            label = label + f", {column}=" + group[column].map(format_value)
        labels.append(pd.Series(label.to_numpy(), index=pd.Index(group["run_id"], name="run_id")))
    result = pd.concat(labels) if labels else pd.Series([], dtype=object, index=pd.Index([], name="run_id"))
    categories = list(dict.fromkeys(result))
    return pd.Series(
        pd.Categorical(result, categories=categories, ordered=True), index=result.index, name="condition"
    )


def add_conditions(frame: pd.DataFrame, runs: pd.DataFrame, exclude: Sequence[str] = ()) -> pd.DataFrame:
    """``frame`` with a ``condition`` column (see ``condition_labels``) joined on run_id."""
    if frame.empty or runs.empty or "run_id" not in frame or "run_id" not in runs:
        return frame
    labels = condition_labels(runs, exclude)
    return frame.drop(columns="condition", errors="ignore").join(labels, on="run_id")


def _natural_key(label: object) -> list:
    """Sort key reading the numbers inside a label as numbers ("length=30" before "length=120")."""
    parts = re.split(r"(\d+(?:\.\d+)?)", str(label))
    return [(0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts)]


def _facet_column(frame: pd.DataFrame) -> str | None:
    return "condition" if "condition" in frame else "task" if "task" in frame else None


def _facets(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(label, rows) per condition, in the condition order; one facet '' when there is none."""
    column = _facet_column(frame)
    if column is None:
        return [("", frame)]
    values = frame[column]
    categorical = isinstance(values.dtype, pd.CategoricalDtype)
    order = values.cat.categories if categorical else sorted(values.unique(), key=_natural_key)
    return [(str(v), frame[values == v]) for v in order if (values == v).any()]


# --------------------------------------------------------------------------- shared helpers


def _probe(analysis: pd.DataFrame, quantity: str, stats_: Sequence[str] = ("mean", "median")) -> pd.DataFrame:
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


def _positive(frame: pd.DataFrame, column: str = "value") -> pd.DataFrame:
    values = frame[column].to_numpy(dtype=float)
    return frame[np.isfinite(values) & (values > 0)]


def _with_log10(frame: pd.DataFrame, column: str = "value") -> pd.DataFrame:
    """The positive, finite rows of ``frame`` with a ``log10`` column: seeds are averaged over it,
    since an arithmetic mean of norms 30 decades apart would be the largest seed alone."""
    rows = _positive(frame, column)
    return rows.assign(log10=np.log10(rows[column].to_numpy(dtype=float)))


def _phases(frame: pd.DataFrame, wanted: Sequence[str] = ("init", "final")) -> list[str]:
    present = set(frame["phase"])
    return [p for p in wanted if p in present]


def _seed_lines(
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


class _Log10Locator(Locator):
    """Ticks for an axis holding log10 values, where a reader of a log axis expects them: whole
    powers of ten over a wide range, 1-2-5 steps over a decade or two, round numbers (0.9, 1,
    1.1) within less than a decade."""

    def __call__(self) -> np.ndarray:
        return self.tick_values(*self.axis.get_view_interval())

    def tick_values(self, vmin: float, vmax: float) -> np.ndarray:
        vmin, vmax = sorted((float(vmin), float(vmax)))
        if vmax - vmin > 2.5:
            return MaxNLocator(nbins=7, integer=True, steps=[1, 2, 3, 5, 10]).tick_values(vmin, vmax)
        if vmax - vmin > 0.8:
            decades = 10.0 ** np.arange(math.floor(vmin), math.ceil(vmax) + 1)
            return np.log10(np.outer(decades, (1.0, 2.0, 5.0)).ravel())
        values = MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(10**vmin, 10**vmax)
        return np.log10(values[values > 0])


def _power_of_ten(k: float) -> str:
    """10ᵏ as mathtext: 10⁻⁶, or 2×10⁻⁶ between whole powers."""
    exponent = math.floor(k + 1e-9)
    mantissa = 10.0 ** (k - exponent)
    if math.isclose(mantissa, 1.0, rel_tol=1e-6):
        return f"$10^{{{exponent}}}$"
    return f"${mantissa:.2g}\\times10^{{{exponent}}}$"


class _Log10Formatter(Formatter):
    """Tick labels of an axis holding log10 values, in the quantity's own units: the numbers
    themselves (0.05, 0.5, 2000) when every tick lies in [0.001, 10⁵) and is not a whole power of
    ten, else 10ᵏ.  ``plain`` prefers numbers for whole powers too, for ratios and step counts
    that readers compare with 1 rather than read as powers."""

    def __init__(self, plain: bool = False) -> None:
        self.plain = plain

    def __call__(self, k: float, pos: int | None = None) -> str:
        return self.format_ticks([k])[0]

    def format_ticks(self, values: Sequence[float]) -> list[str]:
        values = np.asarray(values, dtype=float)
        shown = values  # the style is chosen by the ticks in view, not those the locator adds beyond
        if self.axis is not None:
            low, high = sorted(self.axis.get_view_interval())
            shown = values[(values >= low - 1e-9) & (values <= high + 1e-9)]
        in_range = np.all((shown >= -3) & (shown < 5))
        whole_powers = np.allclose(shown, np.round(shown), atol=1e-9)
        if in_range and (self.plain or not whole_powers):
            return [f"{n:.0f}" if n >= 1000 else f"{n:.3g}" for n in 10.0**values]
        return [_power_of_ten(k) for k in values]


def _log10_axis(axis: Axis, plain: bool = False) -> None:
    """Show an axis of log10 values as a log axis of the quantity (see ``_Log10Locator``,
    ``_Log10Formatter``)."""
    axis.set_major_locator(_Log10Locator())
    axis.set_major_formatter(_Log10Formatter(plain))


def _padded(log_values: pd.Series | np.ndarray, pad: float = math.log10(3.0)) -> tuple[float, float]:
    """Limits of a log10 axis: the data's range and a factor (3) beyond either end."""
    return float(np.min(log_values)) - pad, float(np.max(log_values)) + pad


def _cell_handles(cells: Sequence[str]) -> list[Line2D]:
    return [Line2D([], [], color=cell_color(c), label=c) for c in cells]


def _legend(fig: Figure, handles: list, title: str = "cell") -> None:
    # Outside the panels, so it never covers data.
    fig.legend(handles=handles, title=title, loc="outside right center", frameon=False)


def _label_outer(axes: np.ndarray, xlabel: str, ylabel: str) -> None:
    """Axis labels on the bottom row and left column only (seaborn labels every panel it draws)."""
    for (row, col), ax in np.ndenumerate(axes):
        ax.set_xlabel(xlabel if row == axes.shape[0] - 1 else "")
        ax.set_ylabel(ylabel if col == 0 else "")


def _integer_ticks(ax: Axes, axis: str = "x") -> None:
    """Lags and steps are whole numbers: no 2.5 on their ticks."""
    getattr(ax, f"{axis}axis").set_major_locator(MaxNLocator(integer=True))


def _panel_title(condition: str, phase: str) -> str:
    phase_text = PHASE_LABELS.get(phase, phase)
    return f"{condition} — {phase_text}" if condition else phase_text


_BASELINE_STYLE = {"color": "0.2", "linestyle": ":", "linewidth": 1.2}


def _baseline(ax: Axes, y: float = 0.0) -> None:
    """The memoryless baseline (loss ratio 1, i.e. log10 0) or the no-decay factor 1."""
    ax.axhline(y, **_BASELINE_STYLE)


# --------------------------------------------------------------------------- 1. gradient decay


def _bound_curves(analysis: pd.DataFrame, grad: pd.DataFrame) -> pd.DataFrame:
    """Pascanu bound g0 * b**k per run and phase, k over the run's measured lags, as log10."""
    bound = (
        analysis[analysis["quantity"] == "gradient_bound"] if "quantity" in analysis else analysis.iloc[0:0]
    )
    bound = _positive(bound)
    if bound.empty or grad.empty:
        return pd.DataFrame(columns=["run_id", "phase", "cell", "lag", "log10"])
    keys = ["run_id", "phase", "step"]
    per_step = bound.groupby(keys, as_index=False)["value"].first().rename(columns={"value": "b"})
    g0 = grad[grad["lag"] == 0].groupby(keys, as_index=False)["value"].mean().rename(columns={"value": "g0"})
    curves = grad[keys + ["cell", "lag"]].merge(per_step, on=keys).merge(g0, on=keys)
    log_bound = np.log10(curves["g0"]) + curves["lag"] * np.log10(curves["b"])
    return curves.assign(log10=log_bound)[["run_id", "phase", "cell", "lag", "log10"]]


@styled
def gradient_decay(analysis: pd.DataFrame) -> Figure | None:
    """‖dL/dh_t‖ vs lag (log scale), one line per cell, rows: condition, columns: init / final.

    The Pascanu et al. (2013) bound g0·b^k (``gradient_bound`` rows, tanh/ReLU RNNs) is dashed
    in the cell's colour.  Returns None without ``grad_norm`` rows at init or final.
    """
    grad = _probe(analysis, "grad_norm")
    grad = _with_log10(grad[grad["lag"] >= 0]) if not grad.empty else grad
    phases = _phases(grad) if not grad.empty else []
    if not phases:
        return None
    grad = grad[grad["phase"].isin(phases)]
    bounds = _bound_curves(analysis, grad)
    facets = _facets(grad)
    cells = cell_order(grad["cell"])
    fig, axes = new_figure(len(facets), len(phases), panel=(4.6, 3.2))
    for row, (condition, rows) in enumerate(facets):
        limits = _padded(rows["log10"])  # the bound may grow or vanish far beyond the data
        for col, phase in enumerate(phases):
            ax = axes[row, col]
            panel = rows[rows["phase"] == phase]
            _seed_lines(ax, panel, "lag", cells)
            panel_bounds = bounds[bounds["run_id"].isin(panel["run_id"]) & (bounds["phase"] == phase)]
            if not panel_bounds.empty:
                _seed_lines(ax, panel_bounds, "lag", cells, errorbar=None, linestyle="--", linewidth=1.2)
            ax.set_ylim(*limits)
            ax.set_title(_panel_title(condition, phase))
            _integer_ticks(ax)
            _log10_axis(ax.yaxis)
    _label_outer(axes, "lag k = reference step − t (steps)", "‖∂L/∂h_t‖ (batch mean, log scale)")
    handles = _cell_handles(cells)
    if not bounds.empty:
        handles.append(
            Line2D([], [], color="0.3", linestyle="--", linewidth=1.2, label="Pascanu bound g₀·bᵏ")
        )
    _legend(fig, handles)
    fig.suptitle(f"Gradient decay across time (lines: geometric mean, {_BAND})")
    return fig


# --------------------------------------------------------------------------- 2. heatmap


def _label_step(count: int, most: int = 6) -> int:
    """Label every n-th row or column of a heatmap so that at most ``most`` labels show."""
    return max(1, math.ceil(count / most))


@styled
def gradient_heatmap(analysis: pd.DataFrame) -> Figure | None:
    """log10 ‖dL/dh_t‖ over (training step × lag), one panel per cell (columns) and condition (rows).

    Seeds are averaged in log space; one colour scale for all panels.  None without ``grad_norm``.
    """
    grad = _probe(analysis, "grad_norm")
    if grad.empty or "step" not in grad:
        return None
    grad = _with_log10(grad[grad["lag"] >= 0])
    if grad.empty:
        return None
    facets = _facets(grad)
    cells = cell_order(grad["cell"])
    vmin, vmax = float(grad["log10"].min()), float(grad["log10"].max())
    fig, axes = new_figure(len(facets), len(cells), panel=(3.4, 3.0))
    mappable = None
    for row, (condition, rows) in enumerate(facets):
        for col, cell in enumerate(cells):
            ax = axes[row, col]
            panel = rows[rows["cell"] == cell]
            ax.set_title(f"{cell}" + (f" — {condition}" if condition else ""), color=cell_color(cell))
            if panel.empty:
                ax.set_axis_off()
                continue
            grid = panel.pivot_table(index="step", columns="lag", values="log10", aggfunc="mean")
            sns.heatmap(
                grid,
                vmin=vmin,
                vmax=vmax,
                cmap="mako",
                cbar=False,
                xticklabels=_label_step(grid.shape[1]),
                yticklabels=_label_step(grid.shape[0]),
                rasterized=True,
                ax=ax,
            )
            ax.tick_params(axis="both", labelrotation=0)
            mappable = ax.collections[0]
    _label_outer(axes, "lag k (steps)", "training step")
    if mappable is not None:
        colorbar = fig.colorbar(mappable, ax=axes, shrink=0.8, label="‖∂L/∂h_t‖ (log scale)")
        _log10_axis(colorbar.ax.yaxis)
    fig.suptitle("Where memory appears during training: gradient norm by training step and lag")
    return fig


# --------------------------------------------------------------------------- 3. learning curves


_LOSS_CLIP = 3.0  # log10 of the highest loss / baseline a learning-curve panel shows


@styled
def learning_curves(metrics: pd.DataFrame) -> Figure | None:
    """loss / memoryless-baseline loss vs sequences seen (log y), one line per cell, a panel per
    condition; the dotted line at 1 is the memoryless baseline.  None without ``loss_ratio``."""
    if metrics.empty or not {"loss_ratio", "sequences_seen", "cell"} <= set(metrics.columns):
        return None
    data = _with_log10(metrics, "loss_ratio")
    if data.empty:
        return None
    facets = _facets(data)
    cells = cell_order(data["cell"])
    ncols = min(3, len(facets))
    nrows = -(-len(facets) // ncols)
    fig, axes = new_figure(nrows, ncols, panel=(4.4, 3.2))
    clipped = False
    for ax, (condition, rows) in zip(axes.flat, facets, strict=False):
        _seed_lines(ax, rows, "sequences_seen", cells)
        _baseline(ax)
        if ax.get_ylim()[1] > _LOSS_CLIP:  # a diverging run would squash every other curve flat
            ax.set_ylim(top=_LOSS_CLIP)
            clipped = True
        ax.set_title(condition)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
        _log10_axis(ax.yaxis, plain=True)
    for ax in axes.flat[len(facets) :]:
        ax.set_axis_off()
    for i, ax in enumerate(axes.flat[: len(facets)]):
        lowest = i + ncols >= len(facets)  # the lowest panel of its column
        ax.set_xlabel("training sequences seen" if lowest else "")
        ax.set_ylabel("loss / memoryless baseline (log scale)" if i % ncols == 0 else "")
    handles = _cell_handles(cells)
    handles.append(Line2D([], [], label="memoryless baseline", **_BASELINE_STYLE))
    _legend(fig, handles)
    clip = f"; clipped at {10**_LOSS_CLIP:,.0f}x the baseline" if clipped else ""
    fig.suptitle(f"Learning curves (lines: geometric mean, {_BAND}{clip})")
    return fig


# --------------------------------------------------------------------------- 4. success vs difficulty


def _difficulty_facets(runs: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """(condition, difficulty column, rows) per task and setting, for tasks whose difficulty varies."""
    groups = runs.groupby("task", sort=True) if "task" in runs else [("", runs)]
    facets = []
    for _task, group in groups:
        difficulty = difficulty_column(group)
        if difficulty is not None:
            labelled = add_conditions(group, group, exclude=[difficulty])
            facets += [(condition, difficulty, rows) for condition, rows in _facets(labelled)]
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
    cells = cell_order(done["cell"])
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
            ratio = _with_log10(rows, "final_loss_ratio")
            if not ratio.empty:  # median of log10 = log10 of the median (odd counts; else geometric)
                _points(
                    axes[1, col], ratio, "level", "log10", cells, order=order, estimator="median", dodge=dodge
                )
            _baseline(axes[1, col])
            _log10_axis(axes[1, col].yaxis, plain=True)
        unit = " (steps)" if difficulty in _DIFFICULTY_PREFERENCE else ""
        for row, ax in enumerate(axes[:, col]):
            ax.set_xlabel(f"{difficulty}{unit}" if row == axes.shape[0] - 1 else "")
            ax.set_ylabel("")
    axes[0, 0].set_ylabel("solve rate (fraction of seeds)")
    if has_ratio:
        axes[1, 0].set_ylabel("final loss / baseline (median, log)")
    handles = _cell_handles(cells)
    if has_ratio:
        handles.append(Line2D([], [], label="memoryless baseline", **_BASELINE_STYLE))
    _legend(fig, handles)
    fig.suptitle("Success vs difficulty")
    return fig


# --------------------------------------------------------------------------- 5. decay fits


def decay_fits(analysis: pd.DataFrame) -> pd.DataFrame:
    """One decay fit per run and phase (init, final) of its ``grad_norm`` profile by lag.

    Uses ``seqmem.analysis.fit_decay``; returns columns run_id, cell, phase, decay_factor,
    half_life, memory_horizon, gradient_bound (NaN unless a tanh/ReLU RNN), plus ``condition``,
    ``task`` and ``seed`` when present.  A run whose fit fails is left out.
    """
    from seqmem.analysis import fit_decay  # imported here: the report must load without it

    grad = _probe(analysis, "grad_norm", ("mean",))
    columns = ["run_id", "cell", "phase", "decay_factor", "half_life", "memory_horizon", "gradient_bound"]
    if grad.empty:
        return pd.DataFrame(columns=columns)
    grad = _positive(grad[(grad["lag"] >= 0) & grad["phase"].isin(["init", "final"])])
    bound = analysis[analysis["quantity"] == "gradient_bound"]
    extra = [c for c in ("condition", "task", "seed") if c in grad]
    rows = []
    for (run_id, phase), profile in grad.groupby(["run_id", "phase"], sort=False, observed=True):
        profile = profile[profile["step"] == profile["step"].max()]
        try:
            fit = fit_decay(
                profile[["lag", "value"]].rename(columns={"value": "grad_norm"}), value="grad_norm"
            )
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
    half = stats.t.ppf(0.975, len(logs) - 1) * np.std(logs, ddof=1) / np.sqrt(len(logs))
    center = float(np.mean(logs))
    return center, center - half, center + half


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


def _fit_panel(ax: Axes, rows: pd.DataFrame, column: str, log: bool, cells: Sequence[str]) -> None:
    """One fitted quantity per cell: runs as a swarm, the mean and 95% CI hollow at init and
    filled after training, the Pascanu bound as ×, an infinite value as ▲ on the top edge."""
    x = {(c, p): i + offset for i, c in enumerate(cells) for p, (_fill, offset) in _PHASE_MARKERS.items()}
    common = {**by_cell(cells), "ax": ax}
    runs, summary = _fit_points(rows, column, log, x)
    for phase, (fill, _offset) in _PHASE_MARKERS.items():
        means = summary[summary["phase"] == phase]
        if not means.empty:
            sns.pointplot(
                data=means,
                x="x",
                y="y",
                native_scale=True,
                estimator="median",
                errorbar=("pi", 100),
                marker="o",
                fillstyle=fill,
                markersize=7,
                linewidth=1.4,
                linestyle="none",
                capsize=0.08,
                **common,
            )
    if not runs.empty:  # numeric x (native_scale) puts each phase beside its cell's tick
        sns.swarmplot(data=runs, x="x", y="y", native_scale=True, size=3.5, alpha=0.6, zorder=3, **common)
    if column == "decay_factor" and "gradient_bound" in rows:
        bound = rows[np.isfinite(rows["gradient_bound"].to_numpy(dtype=float))]
        if not bound.empty:
            bound = bound.assign(x=[x[key] for key in zip(bound["cell"], bound["phase"], strict=True)])
            sns.pointplot(
                data=bound,
                x="x",
                y="gradient_bound",
                native_scale=True,
                estimator="mean",
                errorbar=None,
                marker="x",
                markersize=7,
                linestyle="none",
                **common,
            )
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
        _log10_axis(ax.yaxis, plain=True)
        shown = pd.concat([runs["y"], summary["y"]])
        if not shown.empty:  # a factor 1.5 of room: one point alone gives no range
            ax.set_ylim(*_padded(shown, pad=math.log10(1.5)))
    else:
        _baseline(ax, 1.0)
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
    facets = _facets(fits)
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
        Line2D([], [], label="no decay (factor 1)", **_BASELINE_STYLE),
    ]
    _legend(fig, handles, title="markers")
    fig.suptitle("Fitted gradient decay per cell (geometric mean and 95% CI over seeds)")
    return fig


# --------------------------------------------------------------------------- 6. LSTM internals


def _cell_path(analysis: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(cell-state path rows, hidden path rows, what they measure), with log10 columns: Jacobian
    norms if recorded, else gradient norms; restricted to cells that have a cell state."""
    for cell_q, hidden_q, what in (
        ("cell_jacobian_spectral", "jacobian_spectral", "‖∂c_T/∂c_t‖₂, ‖∂h_T/∂h_t‖₂"),
        ("cell_grad_norm", "grad_norm", "‖∂L/∂c_t‖, ‖∂L/∂h_t‖"),
    ):
        cell_rows = _probe(analysis, cell_q)
        if not cell_rows.empty:
            cell_rows = _with_log10(cell_rows[cell_rows["lag"] >= 0])
            hidden = _probe(analysis, hidden_q)
            hidden = _with_log10(hidden[hidden["lag"] >= 0]) if not hidden.empty else hidden
            return cell_rows, hidden[hidden["cell"].isin(cell_rows["cell"])], what
    empty = analysis.iloc[0:0]
    return empty, empty, ""


def _select(frame: pd.DataFrame, condition: str, phase: str) -> pd.DataFrame:
    """The rows of one facet (as labelled by ``_facets``) and phase."""
    column = _facet_column(frame)
    keep = frame["phase"] == phase
    if column and condition:
        keep &= frame[column].astype(str) == condition
    return frame[keep]


@styled
def lstm_internals(analysis: pd.DataFrame) -> Figure | None:
    """LSTM internals per condition (rows) at init / final (columns): the forget-gate distribution
    (median and q10–q90 over units and batch) by lag, and the cell-state path dc_T/dc_t (solid)
    vs the hidden path dh_T/dh_t (dashed), log scale.  None when no run recorded either."""
    gate = _probe(analysis, "gate_f", ("median", "mean"))
    cell_path, hidden_path, what = _cell_path(analysis)
    kinds = [k for k, rows in (("gate", gate), ("path", cell_path)) if not rows.empty]
    if not kinds:
        return None
    everything = pd.concat([gate, cell_path], ignore_index=True)
    phases = _phases(everything)
    if not phases:
        return None
    cells = cell_order(everything["cell"])
    quantiles = analysis[(analysis["quantity"] == "gate_f") & analysis["stat"].isin(["q10", "q90"])]
    gate_x = "lag" if not gate.empty and (gate["lag"] >= 0).any() else "t"
    panels = [(condition, kind) for condition, _rows in _facets(everything) for kind in kinds]
    fig, axes = new_figure(len(panels), len(phases), panel=(4.6, 3.0))
    for row, (condition, kind) in enumerate(panels):
        for col, phase in enumerate(phases):
            ax = axes[row, col]
            ax.set_title(_panel_title(condition, phase))
            if kind == "gate":
                q = _select(quantiles, condition, phase)
                for cell in cell_order(q["cell"]):  # the q10–q90 band is precomputed by the probe
                    spread = q[q["cell"] == cell].pivot_table(index=gate_x, columns="stat", values="value")
                    if {"q10", "q90"} <= set(spread.columns):
                        ax.fill_between(
                            spread.index,
                            spread["q10"],
                            spread["q90"],
                            color=cell_color(cell),
                            alpha=0.2,
                            linewidth=0,
                        )
                _seed_lines(ax, _select(gate, condition, phase), gate_x, cells, y="value", errorbar=None)
                ax.set_ylim(-0.02, 1.02)
                ax.set_ylabel("forget gate f_t (median, q10–q90)" if col == 0 else "")
                ax.set_xlabel("lag k (steps)" if gate_x == "lag" else "time step t")
            else:
                _seed_lines(ax, _select(cell_path, condition, phase), "lag", cells)
                _seed_lines(ax, _select(hidden_path, condition, phase), "lag", cells, linestyle="--")
                _log10_axis(ax.yaxis)
                ax.set_ylabel(f"{what} (log scale)" if col == 0 else "")
                ax.set_xlabel("lag k (steps)")
            _integer_ticks(ax)
    handles = _cell_handles(cells) + [
        Line2D([], [], color="0.3", label="cell-state path c"),
        Line2D([], [], color="0.3", linestyle="--", label="hidden path h"),
    ]
    _legend(fig, handles)
    fig.suptitle(f"LSTM internals: forget gates and the constant error carousel (path {_BAND})")
    return fig
