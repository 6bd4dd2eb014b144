"""What every analysis shares: the precision to measure in, and per-lag summaries.

Every per-step measurement arrives as one value per sample and step, ``(B, L)``, plus each
sample's lag origin ``reference (B,)``; ``lag_frame`` turns that into the tidy frame all
analysis functions return: one row per lag with the batch mean (column ``<name>``) and the
batch median and 10%/90% quantiles (``<name>_median``, ``<name>_q10``, ``<name>_q90``).
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch

from seqmem.model import SequenceModel
from tasks.base import Batch

__all__ = ["STATS", "as_dtype", "batch_as_dtype", "stat_column", "lag_frame", "nan_quantiles"]

STATS = ("mean", "median", "q10", "q90")
DTYPES = (torch.float32, torch.float64)


def _check_dtype(dtype: torch.dtype | None) -> None:
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is invalid: must be None, torch.float32 or torch.float64")


def as_dtype(model: SequenceModel, dtype: torch.dtype | None) -> SequenceModel:
    """``model`` itself, or a copy in ``dtype`` (float64 shows decay past float32's underflow)."""
    _check_dtype(dtype)
    if dtype is None or dtype == model.readout.weight.dtype:
        return model
    return copy.deepcopy(model).to(dtype)


def batch_as_dtype(batch: Batch, dtype: torch.dtype | None) -> Batch:
    _check_dtype(dtype)
    if dtype is None or dtype == batch.inputs.dtype:
        return batch
    return Batch(batch.inputs.to(dtype), batch.targets, batch.mask, batch.lengths)


def stat_column(name: str, stat: str) -> str:
    """The column of statistic ``stat`` of quantity ``name`` in a lag frame."""
    return name if stat == "mean" else f"{name}_{stat}"


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


def lag_frame(
    values: dict[str, torch.Tensor], reference: torch.Tensor, per_sample: bool = False
) -> pd.DataFrame:
    """Tidy per-lag frame of per-sample values ``(B, L)``, lag = reference - t, only t <= reference.

    ``per_sample=False``: one row per lag (columns t, lag, n, then the statistics of every
    quantity over the ``n`` samples that reach that lag); ``t`` is the median over those
    samples of reference - lag, exact whenever all samples share one reference step.
    ``per_sample=True``: one row per sample and step (columns sample, t, lag, then the values).
    """
    first = next(iter(values.values()))
    batch, length = first.shape
    ref = reference.detach().cpu().numpy().astype(np.int64)
    ref = np.where(ref < length, ref, -1)  # a sample without a reference step contributes nothing
    arrays = {name: v.detach().to("cpu", torch.float64).numpy() for name, v in values.items()}
    if per_sample:
        sample, t = np.nonzero(np.arange(length)[None, :] <= ref[:, None])
        frame = pd.DataFrame({"sample": sample, "t": t, "lag": ref[sample] - t})
        return frame.assign(**{name: a[sample, t] for name, a in arrays.items()})
    lags = np.arange(int(ref.max()) + 1)
    t = ref[:, None] - lags[None, :]  # (B, lags): the step each sample is at, at each lag
    valid = t >= 0
    # every lag has at least one valid sample: the one with the largest reference
    median_t = nan_quantiles(np.where(valid, t, np.nan), [0.5])[0]
    columns: dict[str, np.ndarray] = {
        "t": np.floor(median_t).astype(np.int64),
        "lag": lags,
        "n": valid.sum(axis=0),
    }
    for name, a in arrays.items():
        by_lag = np.where(valid, a[np.arange(batch)[:, None], np.clip(t, 0, None)], np.nan)
        columns[name] = np.nansum(by_lag, axis=0) / np.maximum(columns["n"], 1)
        for stat, q in zip(STATS[1:], nan_quantiles(by_lag, [0.5, 0.1, 0.9]), strict=True):
            columns[stat_column(name, stat)] = q
    return pd.DataFrame(columns)
