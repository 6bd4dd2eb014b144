"""Reading the analysis frames (``seqmem.analysis.COLUMNS``) in tests: one quantity's values at
one statistic, by lag or by (sample, t)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from seqmem.analysis import COLUMNS
from tasks import AddingTask, Batch


def curve(frame: pd.DataFrame, quantity: str, stat: str = "mean", by: str = "lag") -> pd.Series:
    """The values of ``quantity`` at ``stat``, indexed by the column ``by`` (ascending)."""
    assert tuple(frame.columns[: len(COLUMNS)]) == COLUMNS
    rows = frame[(frame["quantity"] == quantity) & (frame["stat"] == stat)]
    assert len(rows), f"no rows of {quantity} at {stat}"
    return rows.set_index(rows[by].astype(np.int64))["value"].sort_index()


def samples(frame: pd.DataFrame, quantity: str) -> pd.DataFrame:
    """The per-sample rows of ``quantity``: columns sample, t, lag (int64) and value."""
    rows = frame[(frame["quantity"] == quantity) & frame["stat"].isna()]
    assert len(rows) and rows["sample"].notna().all(), f"no per-sample rows of {quantity}"
    return rows[["sample", "t", "lag", "value"]].astype({"sample": "int64", "t": "int64", "lag": "int64"})


def double(batch: Batch) -> Batch:
    return Batch(batch.inputs.double(), batch.targets, batch.mask, batch.lengths)


def single(batch: Batch, b: int) -> Batch:
    """Sequence ``b`` alone, cut to its own length (no padding at all)."""
    length = int(batch.lengths[b])
    return Batch(
        batch.inputs[b : b + 1, :length],
        batch.targets[b : b + 1, :length],
        batch.mask[b : b + 1, :length],
        batch.lengths[b : b + 1],
    )


def padded(batch: Batch, extra: int, value: float = 7.0) -> Batch:
    """``batch`` with ``extra`` more padding steps of wild inputs (``value``) that no mask scores:
    a measurement that respects the lengths cannot tell it from ``batch``."""
    size, _, width = batch.inputs.shape
    inputs = torch.cat([batch.inputs, torch.full((size, extra, width), value, dtype=batch.inputs.dtype)], 1)
    targets = torch.cat([batch.targets, batch.targets[:, -1:].expand(-1, extra, *batch.targets.shape[2:])], 1)
    mask = torch.cat([batch.mask, torch.zeros(size, extra, dtype=torch.bool)], 1)
    return Batch(inputs, targets, mask, batch.lengths)


# The Jacobian functions read the batch alone; the task they take is checked, not used.
ANY_TASK = AddingTask(length=20)


def batch_of(inputs: torch.Tensor, lengths: list[int] | None = None) -> Batch:
    """``inputs`` (B, L, I) as a batch of sequences of ``lengths`` (default: all L), scored at
    their last step."""
    size, length = inputs.shape[:2]
    lengths = torch.tensor(lengths if lengths is not None else [length] * size)
    mask = torch.arange(length)[None, :] == (lengths - 1)[:, None]
    return Batch(inputs, torch.zeros(size, length), mask, lengths)
