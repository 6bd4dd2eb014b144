"""The training callback that records the analysis as a study runs, in the long probe-row format.

``make_probe(seqmem.config.ProbeConfig(...))`` returns ``callback(ctx) -> DataFrame | None`` for
``seqmem.train.train``: at initialisation, every ``every_n_evals``-th evaluation and at the end
it measures the model on a fixed prefix of the held-out batch (so probes are deterministic and
comparable across steps) and returns rows with the columns of ``PROBE_COLUMNS``:

    step, sequences_seen, phase, quantity, t, lag, stat, value

quantities: grad_norm, cell_grad_norm, input_saliency (t, lag from the reference step);
jacobian_spectral, jacobian_frobenius, cell_jacobian_spectral, cell_jacobian_frobenius,
forget_product (t, lag from the last step); gate_i, gate_f, gate_o, gate_r, gate_z (per step t,
lag = last step - t; stats also 'saturated'); lyapunov (t = exponent index, lag = -1);
gradient_bound (RNN cells, t = lag = -1, stat 'mean').  stats: mean, median, q10, q90.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd
import torch

from seqmem.analysis.common import STATS, as_dtype, batch_as_dtype, lag_frame, stat_column
from seqmem.analysis.fits import rnn_gradient_bound
from seqmem.analysis.gates import gate_statistics
from seqmem.analysis.gradients import lag_gradient_norms
from seqmem.analysis.jacobians import forget_product, jacobian_norms_by_lag, lyapunov_spectrum
from seqmem.config import PROBE_DTYPES, ProbeConfig
from tasks.base import Batch

if TYPE_CHECKING:  # train runs the probes, so analysis does not import it at run time
    from seqmem.train import ProbeContext

__all__ = ["PROBE_COLUMNS", "make_probe", "to_probe_rows"]

PROBE_COLUMNS = ["step", "sequences_seen", "phase", "quantity", "t", "lag", "stat", "value"]
JACOBIAN_QUANTITIES = (
    "jacobian_spectral",
    "jacobian_frobenius",
    "cell_jacobian_spectral",
    "cell_jacobian_frobenius",
)


def to_probe_rows(
    frame: pd.DataFrame, quantities: tuple[str, ...], stats: tuple[str, ...] = STATS
) -> pd.DataFrame:
    """Long rows (quantity, t, lag, stat, value) from a wide lag frame: quantity ``q`` at stat
    ``s`` is the column ``stat_column(q, s)``; quantities missing from the frame are skipped."""
    parts = [
        pd.DataFrame(
            {
                "quantity": name,
                "t": frame["t"],
                "lag": frame["lag"],
                "stat": stat,
                "value": frame[stat_column(name, stat)],
            }
        )
        for name in quantities
        if name in frame.columns
        for stat in stats
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=PROBE_COLUMNS[3:])


def _prefix(batch: Batch, size: int) -> Batch:
    return Batch(batch.inputs[:size], batch.targets[:size], batch.mask[:size], batch.lengths[:size])


def _due(config: ProbeConfig, ctx: ProbeContext) -> bool:
    if ctx.phase != "train":
        return True
    return config.every_n_evals > 0 and (ctx.step // ctx.config.eval_every) % config.every_n_evals == 0


def _measure(config: ProbeConfig, ctx: ProbeContext) -> list[pd.DataFrame]:
    wanted = set(config.quantities)
    dtype = PROBE_DTYPES[config.dtype]
    model = as_dtype(ctx.model, dtype)  # one copy for every measurement of this probe
    batch = batch_as_dtype(_prefix(ctx.eval_batch, config.batch_size), dtype)
    # Jacobians, forget gates and gates are measured up to the last step every sequence has.
    common = int(batch.lengths.min())
    inputs = batch.inputs[:, :common]
    small = inputs[: config.jacobian_batch_size]
    parts = []
    if wanted & {"grad_norm", "input_saliency"}:
        names = ("grad_norm", "cell_grad_norm") if "grad_norm" in wanted else ()
        names += ("input_saliency",) if "input_saliency" in wanted else ()
        origin, norms = lag_gradient_norms(model, batch, ctx.task, names, config.reference)
        parts.append(to_probe_rows(lag_frame(norms, origin), tuple(norms)))
    if "jacobian" in wanted:
        names = JACOBIAN_QUANTITIES + (("forget_product",) if "forget_product" in wanted else ())
        parts.append(to_probe_rows(jacobian_norms_by_lag(model, small), names))
    elif "forget_product" in wanted:  # the gates alone give it: no Jacobians needed
        with torch.no_grad():
            gates = model(small, return_states=True)[1].gates
        if "f" in gates:
            frame = lag_frame(
                {"forget_product": forget_product(gates["f"])}, torch.full((len(small),), common - 1)
            )
            parts.append(to_probe_rows(frame, ("forget_product",)))
    if "gates" in wanted:
        for gate, frame in gate_statistics(model, inputs).groupby("gate", sort=False):
            name = f"gate_{gate}"
            stats = (*STATS, "saturated")
            frame = frame.rename(columns={stat: stat_column(name, stat) for stat in stats})
            parts.append(to_probe_rows(frame.assign(lag=common - 1 - frame["t"]), (name,), stats))
    if "lyapunov" in wanted:
        k = min(config.lyapunov_k, model.hidden_size * len(model.cell.state_names))
        frame = lyapunov_spectrum(model, small, k)
        frame = frame.rename(
            columns={"k": "t", "exponent": "lyapunov"} | {s: f"lyapunov_{s}" for s in STATS[1:]}
        )
        parts.append(to_probe_rows(frame.assign(lag=-1), ("lyapunov",)))
    if "gradient_bound" in wanted and model.cell.gradient_bound() is not None:
        bound = float(rnn_gradient_bound(model)["bound"].iloc[0])
        parts.append(
            pd.DataFrame({"quantity": ["gradient_bound"], "t": -1, "lag": -1, "stat": "mean", "value": bound})
        )
    return parts


def make_probe(config: ProbeConfig) -> Callable[[ProbeContext], pd.DataFrame | None]:
    """A ``train`` callback recording ``config``'s quantities; returns None when not due."""
    if not isinstance(config, ProbeConfig):
        raise ValueError(f"config={config!r} is invalid: must be a ProbeConfig")

    def probe(ctx: ProbeContext) -> pd.DataFrame | None:
        if not _due(config, ctx):
            return None
        parts = _measure(config, ctx)
        rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=PROBE_COLUMNS[3:])
        rows = rows.assign(step=ctx.step, sequences_seen=ctx.sequences_seen, phase=ctx.phase)[PROBE_COLUMNS]
        return rows.astype(
            {
                "step": "int64",
                "sequences_seen": "int64",
                "phase": str,
                "quantity": str,
                "t": "int64",
                "lag": "int64",
                "stat": str,
                "value": "float64",
            }
        )

    return probe
