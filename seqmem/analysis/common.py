"""What every analysis shares: checking its arguments, the precision to measure in, and the
per-lag statistics over a batch of sequences of different lengths.

A per-step measurement arrives as one value per sample and step, ``(B, L)``, plus each sample's
lag origin ``reference (B,)`` (its reference step, or its last step); ``lag_rows`` turns that
into rows of the scheme (``seqmem.analysis.scheme``): per lag, the batch mean, median and
10%/90% quantiles over the ``n`` samples that reach that lag, or one row per sample and step.
Steps after a sample's origin (past its reference step, or padding past its length)
contribute nothing.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch

from seqmem.analysis.scheme import scheme_rows
from seqmem.model import SequenceModel
from tasks.base import Batch, Task

__all__ = [
    "STATS",
    "as_dtype",
    "batch_as_dtype",
    "check_batch",
    "lag_grid",
    "lag_rows",
    "last_steps",
    "model_dtype",
    "nan_quantiles",
    "prefix",
    "statistics",
    "statistics_rows",
]

STATS = ("mean", "median", "q10", "q90")
QUANTILES = {"median": 0.5, "q10": 0.1, "q90": 0.9}
DTYPES = (torch.float32, torch.float64)


def _check_dtype(dtype: torch.dtype | None) -> None:
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is invalid: must be None, torch.float32 or torch.float64")


def check_batch(model: SequenceModel, batch: Batch, task: Task) -> None:
    """A one-line ValueError unless ``batch`` is a Batch of ``task`` that ``model`` can read."""
    if not isinstance(batch, Batch):
        raise ValueError(f"batch={type(batch).__name__} is invalid: must be a tasks.Batch (task.sample(...))")
    if not isinstance(task, Task):
        raise ValueError(f"task={type(task).__name__} is invalid: must be a tasks.Task")
    inputs = batch.inputs
    if inputs.dim() != 3 or inputs.shape[1] < 1 or inputs.shape[-1] != model.input_size:
        raise ValueError(
            f"batch.inputs shape={tuple(inputs.shape)} is invalid: must be (batch, length >= 1, "
            f"{model.input_size}) for this model"
        )


def model_dtype(model: SequenceModel) -> torch.dtype:
    """The floating-point type of the model's parameters (what it measures in)."""
    return next(model.parameters()).dtype


def as_dtype(model: SequenceModel, dtype: torch.dtype | None) -> SequenceModel:
    """``model`` itself, or a copy in ``dtype`` (float64 shows decay past float32's underflow)."""
    _check_dtype(dtype)
    if dtype is None or dtype == model_dtype(model):
        return model
    return copy.deepcopy(model).to(dtype)


def batch_as_dtype(batch: Batch, dtype: torch.dtype | None) -> Batch:
    _check_dtype(dtype)
    if dtype is None or dtype == batch.inputs.dtype:
        return batch
    return Batch(batch.inputs.to(dtype), batch.targets, batch.mask, batch.lengths)


def prefix(batch: Batch, size: int) -> Batch:
    """The first ``size`` sequences of ``batch``."""
    return Batch(batch.inputs[:size], batch.targets[:size], batch.mask[:size], batch.lengths[:size])


def last_steps(batch: Batch) -> torch.Tensor:
    """Each sequence's last step ``(B,)``: its length - 1 (steps after it are padding)."""
    return (batch.lengths - 1).clamp(max=batch.seq_len - 1).to(torch.int64)


def nan_quantiles(values: np.ndarray, q: list[float]) -> np.ndarray:
    """``np.nanquantile(values, q, axis=0)`` (linear interpolation) for columns with at least one
    number, vectorised: numpy's own nanquantile loops over columns in Python, 20x slower.  An
    infinite value (a Lyapunov exponent of a singular Jacobian is -inf) is a quantile, not NaN."""
    ordered = np.sort(values, axis=0)  # NaNs sort last
    count = (~np.isnan(values)).sum(axis=0)
    position = np.asarray(q)[:, None] * (count - 1)[None, :]
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, count - 1)
    columns = np.arange(values.shape[1])
    below, above = ordered[low, columns], ordered[high, columns]
    fraction = position - low  # in [0, 1)
    with np.errstate(invalid="ignore"):  # an infinite neighbour wins (-inf - -inf is not a number)
        between = below + fraction * (above - below)
    between = np.where(np.isposinf(above) & (fraction > 0), above, between)
    return np.where((below == above) | (fraction == 0) | np.isneginf(below), below, between)


def statistics(values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean, median, q10 and q90 (``STATS``, rows) over the valid entries of each column of
    ``values`` (N, P), and their number (P,).  A statistic over entries of which one is NaN (a
    diverged model) is NaN.  Every column must have at least one valid entry."""
    count = valid.sum(axis=0)
    kept = np.where(valid, values, np.nan)
    poisoned = (valid & np.isnan(values)).any(axis=0)
    with np.errstate(invalid="ignore"):
        mean = np.where(valid, values, 0.0).sum(axis=0) / count
    spread = nan_quantiles(kept, [QUANTILES[stat] for stat in STATS[1:]])
    return np.where(poisoned, np.nan, np.vstack([mean, spread])), count


def statistics_rows(quantity: str, values: np.ndarray, valid: np.ndarray, **columns: object) -> pd.DataFrame:
    """Rows of ``quantity``'s ``statistics`` over the valid entries of each column of ``values``
    (N, P), stat by stat, with n and ``columns`` (one entry per column P)."""
    by_stat, count = statistics(values, valid)
    stats = np.repeat(np.array(STATS, dtype=object), len(count))
    tiled = {name: np.tile(np.asarray(column), len(STATS)) for name, column in columns.items()}
    return scheme_rows(quantity, by_stat.reshape(-1), stat=stats, n=np.tile(count, len(STATS)), **tiled)


def lag_grid(reference: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For lag origins ``reference`` (B,) in steps of a length-``length`` sequence: the lags
    0..max, the step ``t`` (B, lags) each sample is at, at each lag, whether that step exists
    (``valid``), and per lag the median of the valid steps, rounded down (the step shown for
    the lag; exact whenever all samples share one origin).  A reference outside 0..length-1
    (no scored step, or none in range) contributes nothing."""
    ref = np.where(reference < length, reference, -1)
    lags = np.arange(max(int(ref.max()), -1) + 1)
    t = ref[:, None] - lags[None, :]
    valid = t >= 0
    # every lag has at least one valid sample: the one with the largest reference
    median = nan_quantiles(np.where(valid, t, np.nan), [0.5])[0] if len(lags) else np.zeros(0)
    return lags, t, valid, np.floor(median).astype(np.int64)


def lag_rows(
    values: dict[str, torch.Tensor], reference: torch.Tensor, per_sample: bool = False
) -> pd.DataFrame:
    """Rows of the per-sample values ``(B, L)`` of each quantity by lag = reference - t, only for
    t <= reference.

    ``per_sample=False``: per quantity, lag and statistic (``statistics_rows``), with t the
    median step at that lag (``lag_grid``).  ``per_sample=True``: one row per quantity, sample
    and step (columns sample, t, lag, value; stat and n missing).
    """
    first = next(iter(values.values()))
    length = first.shape[1]
    ref = reference.detach().cpu().numpy().astype(np.int64)
    arrays = {name: v.detach().to("cpu", torch.float64).numpy() for name, v in values.items()}
    lags, t, valid, median_t = lag_grid(ref, length)
    names = np.array(list(arrays), dtype=object)
    if per_sample:
        sample, lag = np.nonzero(valid)
        step = t[sample, lag]
        order = np.lexsort((step, sample))  # by sample, then step
        sample, lag, step = sample[order], lag[order], step[order]
        value = np.concatenate([a[sample, step] for a in arrays.values()])
        repeat = len(names)
        return scheme_rows(
            np.repeat(names, len(sample)),
            value,
            t=np.tile(step, repeat),
            lag=np.tile(lag, repeat),
            sample=np.tile(sample, repeat),
        )
    gather = np.arange(len(ref))[:, None], np.clip(t, 0, None)
    by_stat, count = zip(*(statistics(a[gather], valid) for a in arrays.values()), strict=True)
    # rows: quantity by quantity, then stat by stat, then lag by lag
    per_quantity = len(STATS) * len(lags)
    return scheme_rows(
        np.repeat(names, per_quantity),
        np.concatenate([values.reshape(-1) for values in by_stat]),
        stat=np.tile(np.repeat(np.array(STATS, dtype=object), len(lags)), len(names)),
        t=np.tile(median_t, len(STATS) * len(names)),
        lag=np.tile(lags, len(STATS) * len(names)),
        n=np.concatenate([np.tile(c, len(STATS)) for c in count]),
    )
