"""How strongly the answer still depends on the past: dL/dh_t, dL/dc_t and dL/dx_t by lag.

All of them come from ONE backward pass: the model is unrolled with ``return_states=True``,
whose ``states.h[t]`` is the very tensor fed to step t + 1 and to the readout, so
``torch.autograd.grad(L, states.h)`` is the total (BPTT) derivative dL/dh_t for every t at once.

The loss L is the task's loss at each sample's reference step (``task.reference_steps``:
the sequence end for adding/multiplication/temporal order, the first recall step for copy-like
tasks), or with ``reference="all"`` the full loss, lags then counted from each sample's last
scored step.  ``task.loss`` is a mean over the scored steps of the whole batch; we multiply it
by their number, so L = sum_i L_i is a per-sample SUM and the gradient w.r.t. sample i's states
is that sample's own dL_i/dh_t (with one scored step per sample, L_i is its loss there),
independent of the batch size and of the other samples.
"""

from __future__ import annotations

import pandas as pd
import torch

from seqmem.analysis.common import as_dtype, batch_as_dtype, check_batch, lag_rows
from seqmem.config import REFERENCES
from seqmem.model import SequenceModel
from tasks.base import Batch, Task, check_choice

__all__ = [
    "gradient_norms_by_lag",
    "input_saliency_by_step",
    "lag_gradient_norms",
    "reference_loss",
]

QUANTITIES = ("grad_norm", "cell_grad_norm", "input_saliency")


def reference_loss(
    outputs: torch.Tensor, batch: Batch, task: Task, reference: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-sample-summed loss L = sum_i L_i (see the module docstring) and each sample's lag
    origin ``(B,)``: its reference step, or its last scored step with ``reference='all'``."""
    positions = torch.arange(batch.seq_len, device=batch.mask.device).expand_as(batch.mask)
    if reference == "all":
        scored = batch
        origin = torch.where(batch.mask, positions, -1).amax(dim=1)
    else:
        origin = task.reference_steps(batch)
        scored = batch.with_mask(positions == origin[:, None])
    return task.loss(outputs, scored) * scored.mask.sum(), origin


def lag_gradient_norms(
    model: SequenceModel,
    batch: Batch,
    task: Task,
    quantities: tuple[str, ...] = QUANTITIES,
    reference: str = "last",
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Each sample's lag origin ``(B,)`` and the per-sample norms ``(B, L)`` of the requested
    gradients, from one backward pass.  ``quantities`` from 'grad_norm' (||dL/dh_t||),
    'cell_grad_norm' (||dL/dc_t||, LSTM only: skipped for cells without a cell state) and
    'input_saliency' (||dL/dx_t||)."""
    check_batch(model, batch, task)
    check_choice("reference", reference, REFERENCES)
    for name in quantities:
        check_choice("quantities", name, QUANTITIES)
    model, batch = as_dtype(model, dtype), batch_as_dtype(batch, dtype)
    with torch.enable_grad():
        inputs = batch.inputs.detach().requires_grad_("input_saliency" in quantities)
        outputs, states = model(inputs, return_states=True)
        loss, origin = reference_loss(outputs, batch, task, reference)
        wrt = {"grad_norm": states.h, "cell_grad_norm": states.c, "input_saliency": [inputs]}
        wanted = {name: wrt[name] for name in quantities if wrt[name] is not None}
        flat = [tensor for tensors in wanted.values() for tensor in tensors]
        # materialize: steps after the reference get exact zeros rather than None
        grads = torch.autograd.grad(loss, flat, allow_unused=True, materialize_grads=True)
    norms, start = {}, 0
    for name, tensors in wanted.items():
        part = grads[start : start + len(tensors)]
        start += len(tensors)
        stacked = part[0] if name == "input_saliency" else torch.stack(part, dim=1)
        norms[name] = torch.linalg.vector_norm(stacked, dim=-1)
    return origin, norms


def gradient_norms_by_lag(
    model: SequenceModel,
    batch: Batch,
    task: Task,
    reference: str = "last",
    *,
    per_sample: bool = False,
    dtype: torch.dtype | None = None,
) -> pd.DataFrame:
    """||dL/dh_t|| (quantity grad_norm) and, for cells with a cell state, ||dL/dc_t||
    (cell_grad_norm) for every step t <= each sample's reference step.

    Both are total derivatives of the graph nodes h_t and c_t (what BPTT carries back), so
    dL/dc_t includes the path through h_t = o_t * tanh(c_t) as well as the one through c_{t+1}.

    Rows (``seqmem.analysis.COLUMNS``): per quantity, lag (= reference - t) and stat (mean,
    median, q10, q90 over the n samples that reach the lag), t the median step at that lag;
    ``per_sample=True``: one row per quantity, sample and step t (stat and n missing).
    ``reference``: 'last' (the task's reference step) or 'all' (the full loss).  ``dtype``:
    measure on a copy of the model in this precision (float64 follows the decay far past
    float32's underflow at ~1e-38 / 1e-45).
    """
    origin, norms = lag_gradient_norms(model, batch, task, ("grad_norm", "cell_grad_norm"), reference, dtype)
    return lag_rows(norms, origin, per_sample)


def input_saliency_by_step(
    model: SequenceModel,
    batch: Batch,
    task: Task,
    reference: str = "last",
    *,
    per_sample: bool = False,
    dtype: torch.dtype | None = None,
) -> pd.DataFrame:
    """||dL/dx_t||: how much the answer still depends on the input ``lag`` steps back.

    Same loss, reference and rows as ``gradient_norms_by_lag``, quantity ``input_saliency``.
    """
    origin, norms = lag_gradient_norms(model, batch, task, ("input_saliency",), reference, dtype)
    return lag_rows(norms, origin, per_sample)
