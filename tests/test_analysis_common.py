"""lag_frame (per-lag statistics over samples with different reference steps) and as_dtype."""

import numpy as np
import pandas as pd
import pytest
import torch

from seqmem.analysis.common import as_dtype, lag_frame, nan_quantiles
from seqmem.cells import make_cell
from seqmem.model import SequenceModel


def long_by_hand(values, reference):
    """One row per sample and step t <= its reference, built with plain loops."""
    rows = [
        {"sample": b, "t": t, "lag": int(reference[b]) - t, "x": float(values[b, t])}
        for b in range(values.shape[0])
        for t in range(values.shape[1])
        if t <= reference[b] < values.shape[1]
    ]
    return pd.DataFrame(rows)


# -1: no scored step (base Task); 7 = L: no recall step (copy tasks); both contribute nothing
@pytest.mark.parametrize("reference", [[6, 3, 6, 0, 5], [4, 4, 4, 4, 4], [6, -1, 2, 7, 6]])
def test_statistics_over_the_samples_at_each_lag(reference):
    values = torch.rand(5, 7, dtype=torch.float64)
    reference = torch.tensor(reference)
    expected = long_by_hand(values.numpy(), reference.numpy())
    per_sample = lag_frame({"x": values}, reference, per_sample=True)
    pd.testing.assert_frame_equal(per_sample.reset_index(drop=True), expected, check_dtype=False)
    frame = lag_frame({"x": values}, reference)
    grouped = expected.groupby("lag")
    assert frame["lag"].tolist() == list(grouped.groups)
    np.testing.assert_array_equal(frame["n"], grouped.size())
    np.testing.assert_allclose(frame["x"], grouped["x"].mean())
    np.testing.assert_allclose(frame["x_median"], grouped["x"].median())
    np.testing.assert_allclose(frame["x_q10"], grouped["x"].quantile(0.1))
    np.testing.assert_allclose(frame["x_q90"], grouped["x"].quantile(0.9))
    np.testing.assert_array_equal(frame["t"], np.floor(grouped["t"].median()))


@pytest.mark.parametrize(
    "q, expected",
    [
        (0.1, [-np.inf, -np.inf, 3.2, 1.3]),
        (0.5, [-np.inf, 1.5, 4.0, np.inf]),
        (0.9, [-np.inf, 3.4, 4.8, np.inf]),
    ],
)
def test_nan_quantiles_interpolate_linearly_and_keep_infinities(q, expected):
    # columns sorted: [-inf]*3 + [0.5]; [-inf, 1, 2, 4]; [3, 5] (NaNs left out); [1, 2, inf, inf]
    values = np.array(
        [
            [-np.inf, 1.0, np.nan, 1.0],
            [-np.inf, 2.0, 3.0, np.inf],
            [-np.inf, -np.inf, np.nan, 2.0],
            [0.5, 4.0, 5.0, np.inf],
        ]
    )
    with np.errstate(all="raise"):
        np.testing.assert_allclose(nan_quantiles(values, [q])[0], expected, rtol=1e-12)


def test_as_dtype_copies_and_never_converts_in_place():
    model = SequenceModel(make_cell("lstm", 2, 3), 2, 3, 1)
    assert as_dtype(model, None) is model and as_dtype(model, torch.float32) is model
    double = as_dtype(model, torch.float64)
    assert double is not model and double.cell.weight_hh.dtype == torch.float64
    assert model.cell.weight_hh.dtype == torch.float32
    torch.testing.assert_close(double.cell.weight_hh.float(), model.cell.weight_hh)
    with pytest.raises(ValueError, match="dtype"):
        as_dtype(model, torch.int64)
