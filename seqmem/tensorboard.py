"""Logging a training run to TensorBoard (the optional extra: ``pip install 'seqmem[tensorboard]'``).

``TensorBoardLogger(log_dir, probe)`` is a ``seqmem.train`` callback writing, with the optimiser
step as the x axis,

    at every evaluation, the history row's numbers as scalars:
        eval/<metric>        the task's metrics on the held-out batch: loss, loss_ratio and the
                             task's own (accuracy, error_rate, abs_error, ...)
        train/loss, train/grad_norm, train/grad_norm_max
                             the training loss and gradient norm (before clipping) averaged over
                             the steps since the previous evaluation (none at step 0), and the
                             largest gradient norm among them
    at every probe that measured ``grad_norm``, the gradient-decay curve as an image:
        gradient_decay       ‖∂L/∂h_t‖ by lag (and ‖∂L/∂c_t‖ where the cell has a cell state),
                             log scale, in the report's style, beside the curve at initialisation

The probe is the run's own (``probe``, a ProbeConfig, or None for scalars only): the logger runs
it and returns its rows unchanged, so ``train`` stores exactly what it stores without the logger.

``tensorboard_run`` is the run function (``run_fn``) of sweeps that log every run they train to
``<log_dir>/<run_id>``; ``seqmem train/run --tensorboard DIR`` use it.  ``torch.utils.tensorboard``
is imported only when a logger starts writing, so seqmem works without the extra;
``require_tensorboard`` tells in one line what to install.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from seqmem.analysis import make_probe
from seqmem.config import ProbeConfig, RunConfig
from seqmem.report.common import shared_legend, with_log10
from seqmem.report.style import PHASE_LABELS, cell_color, new_figure, styled
from seqmem.report.ticks import integer_ticks, log10_axis, padded_limits
from seqmem.train import ProbeContext, RunResult, train

__all__ = [
    "GRADIENT_PROBE",
    "MISSING_TENSORBOARD",
    "TensorBoardLogger",
    "gradient_decay_curve",
    "require_tensorboard",
    "scalars_of",
    "tensorboard_run",
]

MISSING_TENSORBOARD = "TensorBoard logging needs the tensorboard package: pip install 'seqmem[tensorboard]'"
# The probe `seqmem train --tensorboard` adds to a run that has none: the gradient norms by lag
# (one float64 forward and backward pass over 64 held-out sequences per evaluation).
GRADIENT_PROBE = ProbeConfig(quantities=("grad_norm",))
# History columns that are not scalars of the run: the x axis, wall time (TensorBoard keeps its
# own), and the solved flag (the metric it is judged on is logged).
_NOT_LOGGED = ("step", "sequences_seen", "elapsed_s", "solved")
_TRAINING = {
    "train_loss": "train/loss",
    "grad_norm": "train/grad_norm",
    "grad_norm_max": "train/grad_norm_max",
}
GRADIENT_TAG = "gradient_decay"


def require_tensorboard() -> type:
    """``torch.utils.tensorboard.SummaryWriter``, or an ImportError saying what to install."""
    try:
        # imported here, not at the top: TensorBoard is an optional extra, and torch's module
        # raises at import time without it
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ImportError(MISSING_TENSORBOARD) from None
    return SummaryWriter


def scalars_of(history_row: Mapping[str, Any]) -> dict[str, float]:
    """Tag -> value of one history row (see the module docstring).  The training columns are
    left out while no step was taken (they are NaN at step 0); a NaN or infinite loss of a
    diverging run is kept."""
    trained = history_row.get("step", 0) > 0
    scalars = {}
    for name, value in history_row.items():
        if name in _NOT_LOGGED:
            continue
        if name in _TRAINING:
            if trained:
                scalars[_TRAINING[name]] = float(value)
        else:
            scalars[f"eval/{name}"] = float(value)
    return scalars


def _mean_rows(rows: pd.DataFrame, quantity: str) -> pd.DataFrame:
    """The batch-mean rows of ``quantity`` that a log axis can show, with a log10 column, by lag."""
    chosen = rows[(rows["quantity"] == quantity) & (rows["stat"] == "mean")]
    return with_log10(chosen).sort_values("lag")


@styled
def gradient_decay_curve(
    rows: pd.DataFrame, cell: str, title: str, reference: pd.DataFrame | None = None
) -> Figure | None:
    """‖∂L/∂h_t‖ by lag (log scale) from one probe's ``rows`` (``seqmem.analysis.PROBE_COLUMNS``),
    in ``cell``'s colour; ‖∂L/∂c_t‖ dashed where measured; ``reference`` (the probe at
    initialisation) in grey.  None without positive ``grad_norm`` means."""
    hidden = _mean_rows(rows, "grad_norm")
    if hidden.empty:
        return None
    colour = cell_color(cell)
    phase = str(rows["phase"].iloc[0])
    lines = [(hidden, {"color": colour}, f"‖∂L/∂h_t‖ {PHASE_LABELS.get(phase, phase)}")]
    cell_state = _mean_rows(rows, "cell_grad_norm")
    if not cell_state.empty:
        lines.append((cell_state, {"color": colour, "linestyle": "--"}, "‖∂L/∂c_t‖"))
    if reference is not None and phase != "init":
        start = _mean_rows(reference, "grad_norm")
        if not start.empty:
            lines.append((start, {"color": "0.6", "linewidth": 1.2}, f"‖∂L/∂h_t‖ {PHASE_LABELS['init']}"))
    fig, axes = new_figure(1, 1, panel=(5.0, 3.4))
    ax = axes[0, 0]
    for frame, style, label in lines:
        ax.plot(frame["lag"].to_numpy(dtype=float), frame["log10"].to_numpy(), label=label, **style)
    ax.set_ylim(*padded_limits(pd.concat([frame["log10"] for frame, _style, _label in lines])))
    ax.set_xlabel("lag k = reference step − t (steps)")
    ax.set_ylabel("gradient norm (batch mean, log scale)")
    integer_ticks(ax)
    log10_axis(ax.yaxis)
    shared_legend(fig, [Line2D([], [], label=label, **style) for _frame, style, label in lines], title=cell)
    fig.suptitle(title)
    return fig


def _pixels(fig: Figure) -> np.ndarray:
    """The figure rendered as an RGB image ``(H, W, 3)`` (Agg, without pyplot)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class TensorBoardLogger:
    """A ``seqmem.train`` callback logging a run to TensorBoard under ``log_dir`` (see the module
    docstring).  The event file is opened at the first evaluation, flushed after every one and
    closed after the final one; ``close`` closes it early."""

    def __init__(self, log_dir: str | Path, probe: ProbeConfig | None = None) -> None:
        if probe is not None and not isinstance(probe, ProbeConfig):
            raise ValueError(f"probe={probe!r} is invalid: must be a ProbeConfig or None")
        self.log_dir = Path(log_dir)
        self.probe = None if probe is None else make_probe(probe)
        self._writer: Any = None
        self._scalar_steps: set[int] = set()
        self._image_steps: set[int] = set()
        self._init_rows: pd.DataFrame | None = None

    def __call__(self, ctx: ProbeContext) -> pd.DataFrame | None:
        rows = None if self.probe is None else self.probe(ctx)
        if self._writer is None:
            self._writer = require_tensorboard()(log_dir=str(self.log_dir))
        if ctx.step not in self._scalar_steps:  # at step 0 a run may be both at 'init' and 'final'
            self._scalar_steps.add(ctx.step)
            for tag, value in scalars_of(ctx.history_row).items():
                self._writer.add_scalar(tag, value, ctx.step)
        if rows is not None:
            self._log_curve(ctx, rows)
        if ctx.phase == "final":
            self.close()
        else:
            self._writer.flush()  # so that a running TensorBoard shows it now
        return rows

    def _log_curve(self, ctx: ProbeContext, rows: pd.DataFrame) -> None:
        if ctx.phase == "init":
            self._init_rows = rows
        if ctx.step in self._image_steps:
            return
        ratio = ctx.history_row.get("loss_ratio", math.nan)
        title = f"{ctx.config.cell} on {ctx.task}\nstep {ctx.step}, loss / baseline {ratio:.3g}"
        fig = gradient_decay_curve(rows, ctx.config.cell, title, self._init_rows)
        if fig is not None:
            self._image_steps.add(ctx.step)
            self._writer.add_image(GRADIENT_TAG, _pixels(fig), ctx.step, dataformats="HWC")

    def close(self) -> None:
        """Write out and close the event file (a later evaluation opens a new one)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def tensorboard_run(run: RunConfig, progress: bool | None = False, *, log_dir: str | Path) -> RunResult:
    """A sweep's run function (``functools.partial(tensorboard_run, log_dir=DIR)``): ``train`` with
    the run's probe, logged to TensorBoard under ``DIR/<run_id>``.  Its result is the default run
    function's (``seqmem.sweep.train_run``)."""
    logger = TensorBoardLogger(Path(log_dir) / run.run_id, run.probe)
    return train(run.train, callbacks=[logger], progress=progress)
