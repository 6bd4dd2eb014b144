"""Which earlier inputs each output still depends on: the connectivity of Madsen (2019).

Madsen's *Visualizing memorization in RNNs* (Distill, 2019) draws, for each output step t' and
each input step t <= t', the magnitude of the gradient of the output at t' with respect to the
input at t: a heatmap (output step x input step) whose fading away from the diagonal is the
network forgetting.  Here the magnitude is the Frobenius norm of the whole Jacobian

    connectivity(t', t) = ||dy_{t'} / dx_t||_F      (y_{t'}: all output_size outputs at t')

per sequence, for every output step within the sequence (scored or not: it measures the model's
memory, not the task's loss).  With one output (adding, multiplication) it is Madsen's gradient
norm; for a classifier it counts every logit, where Madsen took the target character's.

Cost: reverse mode gives dy_{t'}/dx for all t at once, one backward pass per output row.  All
output rows are batched into one vmapped backward (``is_grads_batched``) over the graph of one
unroll, in chunks of output steps that bound the memory of the stacked input gradients; each
chunk starts from its slice of the outputs, so its backward only visits the steps up to its last
output step.  That is at most one (batched) backward per output step, L * output_size rows in
all: about L^2/2 steps of backpropagation per output unit, against L for one training pass.
"""

from __future__ import annotations

import pandas as pd
import torch

from seqmem.analysis.common import as_dtype, batch_as_dtype, check_batch, last_steps, statistics_rows
from seqmem.analysis.scheme import scheme_rows
from seqmem.model import SequenceModel
from tasks.base import Batch, Task

__all__ = ["connectivity"]

# The stacked input gradients of one chunk hold at most this many numbers (128 MiB in float64).
CHUNK_ELEMENTS = 2**24


def _output_jacobian_norms(outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """||d outputs[:, s] / d inputs[:, t]||_F for every output step s of the slice ``outputs``
    (B, S, O) and every input step t: (S, B, L), one vmapped backward for all S * O rows."""
    batch, steps, size = outputs.shape
    rows_ = steps * size
    # row (s, o) of the batched backward seeds output unit o at step s of every sequence
    seeds = torch.eye(rows_, dtype=outputs.dtype, device=outputs.device).view(rows_, 1, steps, size)
    (grads,) = torch.autograd.grad(
        outputs,
        inputs,
        grad_outputs=seeds.expand(rows_, batch, steps, size),
        is_grads_batched=True,
        retain_graph=True,
    )
    return torch.linalg.vector_norm(grads.view(steps, size, batch, *inputs.shape[1:]), dim=(1, 4))


def connectivity(
    model: SequenceModel,
    batch: Batch,
    task: Task,
    *,
    per_sample: bool = False,
    dtype: torch.dtype | None = None,
) -> pd.DataFrame:
    """||dy_{t'}/dx_t||_F (quantity ``connectivity``) for every output step t' within each
    sequence and every input step t <= t' (see the module docstring).

    Rows (``seqmem.analysis.COLUMNS``): t = the input step, lag = t' - t (so the output step is
    t + lag), per stat (mean, median, q10, q90 over the n sequences that reach step t'); with
    ``per_sample=True`` one row per sequence, t and lag (stat and n missing), ordered by output
    step, then input step.  ``task`` only checks the batch: every output step counts, scored or
    not.  ``dtype``: measure on a copy of the model in this precision.
    """
    check_batch(model, batch, task)
    model, batch = as_dtype(model, dtype), batch_as_dtype(batch, dtype)
    last = last_steps(batch)
    length = int(last.max()) + 1  # padding past the longest sequence is left out altogether
    with torch.enable_grad():
        inputs = batch.inputs[:, :length].detach().requires_grad_()
        # the plain unroll: a fused kernel's backward need not support a vmapped backward
        outputs, _ = model(inputs, return_states=True)
        size = outputs.shape[-1]
        chunk = max(1, CHUNK_ELEMENTS // (size * inputs.numel()))
        norms = torch.cat(
            [_output_jacobian_norms(outputs[:, a : a + chunk], inputs) for a in range(0, length, chunk)]
        )  # (output step, B, input step)
    output_step, input_step = torch.tril_indices(length, length)  # t <= t', by t', then t
    values = norms[output_step, :, input_step].T.detach().to("cpu", torch.float64).numpy()  # (B, pairs)
    valid = (output_step[None, :] <= last[:, None].cpu()).numpy()
    t, lag = input_step.numpy(), (output_step - input_step).numpy()
    if per_sample:
        sample, pair = valid.nonzero()
        return scheme_rows("connectivity", values[sample, pair], t=t[pair], lag=lag[pair], sample=sample)
    return statistics_rows("connectivity", values, valid, t=t, lag=lag)
