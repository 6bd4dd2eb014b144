"""Gate activations by lag: are the LSTM/GRU gates open, shut, or saturated?  And the forget-gate
product, the LSTM cell state's own path back in time.

Both look back from each sequence's last step T (its length - 1): a sequence's padding steps
contribute nothing, and a lag counts the sequences that reach it.
"""

from __future__ import annotations

import pandas as pd
import torch

from seqmem.analysis.common import check_batch, lag_grid, lag_rows, last_steps
from seqmem.analysis.scheme import scheme_rows, tidy
from seqmem.model import SequenceModel
from tasks.base import Batch, Task

__all__ = ["SIGMOID_GATES", "SATURATION", "forget_product", "forget_product_by_lag", "gate_statistics"]

# The sigmoid gates (LSTM i, f, o; GRU r, z); the tanh candidates g and n are no gates.
SIGMOID_GATES = ("i", "f", "o", "r", "z")
SATURATION = (0.05, 0.95)


def _run(model: SequenceModel, batch: Batch, task: Task) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The gate activations (B, L, H) of ``model`` on ``batch`` up to its longest sequence, and
    each sequence's last step (B,)."""
    check_batch(model, batch, task)
    last = last_steps(batch)
    with torch.no_grad():
        _, states = model(batch.inputs[:, : int(last.max()) + 1], return_states=True)
    return states.gates, last


def gate_statistics(model: SequenceModel, batch: Batch, task: Task) -> pd.DataFrame:
    """Per sigmoid gate (quantity ``gate_<name>``: gate_i, gate_f, gate_o for LSTMs, gate_r,
    gate_z for GRUs) and lag from each sequence's last step, statistics of the activations over
    the sequences that reach that lag and all their units (n = sequences x units): mean, median,
    q10, q90 and ``saturated``, the fraction below 0.05 or above 0.95 (where the gate's
    derivative, at most 0.05, all but stops gradients through it).  t is the median step at the
    lag (``seqmem.analysis.COLUMNS``).  No rows for cells without gates (RNN).
    """
    gates, last = _run(model, batch, task)
    lags, t, valid, median_t = lag_grid(last.cpu().numpy(), int(last.max()) + 1)
    at = torch.arange(len(last))[:, None], torch.as_tensor(t).clamp_min(0)  # sample b's step at each lag
    parts = []
    for gate in (name for name in SIGMOID_GATES if name in gates):
        # (lags, B*H): sample b's units at its step t[b, lag], NaN where it has none
        grid = gates[gate].double().cpu()[at].transpose(0, 1)
        mask = torch.as_tensor(valid.T)[..., None].expand_as(grid).reshape(len(lags), -1)
        grid = grid.reshape(len(lags), -1).masked_fill(~mask, torch.nan)
        # torch's reductions, as the gates were always summarised (nanmean/nanquantile equal
        # mean/quantile where nothing is masked); a NaN activation (a diverged model) poisons its lag
        q10, median, q90 = torch.nanquantile(grid, grid.new_tensor([0.1, 0.5, 0.9]), dim=1)
        count = mask.sum(dim=1)
        saturated = (((grid < SATURATION[0]) | (grid > SATURATION[1])) & mask).double().sum(dim=1) / count
        by_stat = {
            "mean": grid.nanmean(dim=1),
            "median": median,
            "q10": q10,
            "q90": q90,
            "saturated": saturated,
        }
        poisoned = (torch.isnan(grid) & mask).any(dim=1)
        for stat, value in by_stat.items():
            value = value.masked_fill(poisoned, torch.nan).numpy()
            parts.append(scheme_rows(f"gate_{gate}", value, stat=stat, t=median_t, lag=lags, n=count.numpy()))
    return tidy(parts)


def forget_product(forget: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """Per sample and t, the mean over units of prod_{s=t+1}^{T} f_s, i.e. dc_T/dc_t along the
    cell-state path alone (1 at t = T), T = ``last`` (B,) each sequence's last step; ``forget``
    is (B, L, H).  In log space, float64; padding steps s > T count as f = 1."""
    logs = torch.log(forget.to(torch.float64))
    steps = torch.arange(forget.shape[1], device=forget.device)
    logs = torch.where(steps[None, :, None] <= last[:, None, None], logs, 0.0)
    later = logs.flip(1).cumsum(1).flip(1) - logs  # sum over s > t
    return later.exp().mean(dim=-1)


def forget_product_by_lag(model: SequenceModel, batch: Batch, task: Task) -> pd.DataFrame:
    """The forget-gate product (quantity ``forget_product``, see ``forget_product``) by lag from each
    sequence's last step: mean, median, q10, q90 over the sequences that reach the lag
    (``seqmem.analysis.COLUMNS``).  No rows for cells without a forget gate."""
    gates, last = _run(model, batch, task)
    if "f" not in gates:
        return tidy([])
    return lag_rows({"forget_product": forget_product(gates["f"], last)}, last)
