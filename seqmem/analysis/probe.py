"""The training callback that records the analysis as a study runs.

``make_probe(seqmem.config.ProbeConfig(...))`` returns ``callback(ctx) -> DataFrame | None`` for
``seqmem.train.train``: at initialisation, every ``every_n_evals``-th evaluation and at the end
it measures the model on a fixed prefix of the held-out batch (so probes are deterministic and
comparable across steps).  Its rows are exactly the analysis functions' frames, with the columns
``PROBE_COLUMNS`` = step, sequences_seen, phase, then ``seqmem.analysis.COLUMNS``:

    ProbeConfig quantity  function (batch)                        quantities in the rows
    grad_norm             gradient_norms_by_lag (batch_size)      grad_norm, cell_grad_norm
    input_saliency        input_saliency_by_step (batch_size)     input_saliency
    jacobian              jacobian_norms_by_lag (jacobian_batch)  jacobian_spectral, ..._frobenius,
                                                                  cell_jacobian_spectral, ...
    forget_product        forget_product_by_lag (jacobian_batch)  forget_product
    gates                 gate_statistics (batch_size)            gate_i, gate_f, gate_o, gate_r, gate_z
    lyapunov              lyapunov_spectrum (jacobian_batch)      lyapunov
    gradient_bound        rnn_gradient_bound (RNN cells only)     sigma_max, derivative_bound,
                                                                  gradient_bound
    connectivity          connectivity (jacobian_batch)           connectivity

Quantities a cell does not have (a cell state, gates, a forget gate, a gradient bound) are
left out, not faked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd

from seqmem.analysis.common import as_dtype, batch_as_dtype, lag_rows, prefix
from seqmem.analysis.fits import rnn_gradient_bound
from seqmem.analysis.gates import forget_product_by_lag, gate_statistics
from seqmem.analysis.gradients import lag_gradient_norms
from seqmem.analysis.jacobians import jacobian_norms_by_lag, lyapunov_spectrum
from seqmem.analysis.outputs import connectivity
from seqmem.analysis.scheme import COLUMN_TYPES, PROBE_COLUMNS, tidy
from seqmem.config import PROBE_DTYPES, ProbeConfig

if TYPE_CHECKING:  # train runs the probes; the probe needs only the context's type
    from seqmem.train import ProbeContext

__all__ = ["PROBE_COLUMNS", "make_probe"]

PROBE_TYPES = {"step": "int64", "sequences_seen": "int64", "phase": "str", **COLUMN_TYPES}


def _due(config: ProbeConfig, ctx: ProbeContext) -> bool:
    if ctx.phase != "train":
        return True
    return config.every_n_evals > 0 and (ctx.step // ctx.config.eval_every) % config.every_n_evals == 0


def _measure(config: ProbeConfig, ctx: ProbeContext) -> list[pd.DataFrame]:
    wanted = set(config.quantities)
    dtype = PROBE_DTYPES[config.dtype]
    model = as_dtype(ctx.model, dtype)  # one copy for every measurement of this probe
    batch = batch_as_dtype(prefix(ctx.eval_batch, config.batch_size), dtype)
    small = prefix(batch, config.jacobian_batch_size)
    task = ctx.task
    parts = []
    if wanted & {"grad_norm", "input_saliency"}:
        # both from one backward pass: the rows of gradient_norms_by_lag and input_saliency_by_step
        names = ("grad_norm", "cell_grad_norm") if "grad_norm" in wanted else ()
        names += ("input_saliency",) if "input_saliency" in wanted else ()
        origin, norms = lag_gradient_norms(model, batch, task, names, config.reference)
        parts.append(lag_rows(norms, origin))
    if "jacobian" in wanted:
        parts.append(jacobian_norms_by_lag(model, small, task))
    if "forget_product" in wanted:
        parts.append(forget_product_by_lag(model, small, task))
    if "gates" in wanted:
        parts.append(gate_statistics(model, batch, task))
    if "lyapunov" in wanted:
        k = min(config.lyapunov_k, model.hidden_size * len(model.cell.state_names))
        parts.append(lyapunov_spectrum(model, small, task, k))
    if "gradient_bound" in wanted and model.cell.gradient_bound() is not None:
        parts.append(rnn_gradient_bound(model))
    if "connectivity" in wanted:
        parts.append(connectivity(model, small, task))
    return parts


def make_probe(config: ProbeConfig) -> Callable[[ProbeContext], pd.DataFrame | None]:
    """A ``train`` callback recording ``config``'s quantities; returns None when not due."""
    if not isinstance(config, ProbeConfig):
        raise ValueError(f"config={config!r} is invalid: must be a ProbeConfig")

    def probe(ctx: ProbeContext) -> pd.DataFrame | None:
        if not _due(config, ctx):
            return None
        rows = tidy(_measure(config, ctx))
        rows = rows.assign(step=ctx.step, sequences_seen=ctx.sequences_seen, phase=ctx.phase)
        return rows[list(PROBE_COLUMNS)].astype(PROBE_TYPES)

    return probe
