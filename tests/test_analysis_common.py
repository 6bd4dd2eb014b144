"""lag_rows and statistics_rows (per-lag statistics over samples with different reference steps),
nan_quantiles, as_dtype and the batch check every analysis function starts with."""

import numpy as np
import pandas as pd
import pytest
import torch
from analysis_checks import samples

from seqmem.analysis import COLUMNS
from seqmem.analysis.common import as_dtype, check_batch, lag_rows, nan_quantiles, statistics_rows
from seqmem.cells import make_cell
from seqmem.model import SequenceModel
from tasks import AddingTask, Batch


def long_by_hand(values, reference):
    """One row per sample and step t <= its reference, built with plain loops."""
    rows = [
        {"sample": b, "t": t, "lag": int(reference[b]) - t, "value": float(values[b, t])}
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
    per_sample = lag_rows({"x": values}, reference, per_sample=True)
    assert tuple(per_sample.columns) == COLUMNS
    assert per_sample[["stat", "k", "n"]].isna().all().all()
    pd.testing.assert_frame_equal(samples(per_sample, "x").reset_index(drop=True), expected)
    frame = lag_rows({"x": values}, reference)
    grouped = expected.groupby("lag")
    for stat, reference_values in (
        ("mean", grouped["value"].mean()),
        ("median", grouped["value"].median()),
        ("q10", grouped["value"].quantile(0.1)),
        ("q90", grouped["value"].quantile(0.9)),
    ):
        rows = frame[frame["stat"] == stat]
        assert rows["lag"].tolist() == list(grouped.groups)
        np.testing.assert_allclose(rows["value"], reference_values)
        np.testing.assert_array_equal(rows["n"], grouped.size())
        np.testing.assert_array_equal(rows["t"], np.floor(grouped["t"].median()))
    assert frame[["k", "sample"]].isna().all().all() and set(frame["quantity"]) == {"x"}


def test_several_quantities_come_one_after_the_other():
    values = {"a": torch.rand(3, 4, dtype=torch.float64), "b": torch.rand(3, 4, dtype=torch.float64)}
    frame = lag_rows(values, torch.tensor([3, 3, 2]))
    assert frame["quantity"].drop_duplicates().tolist() == ["a", "b"]
    assert frame.groupby("quantity").size().tolist() == [4 * 4, 4 * 4]  # 4 lags x 4 stats each


def test_a_nan_value_makes_every_statistic_at_its_lag_nan():
    # a diverged model's NaN must not be skipped (it was once summed as 0); NaN in a step
    # that no sample reaches (padding) must change nothing
    values = np.array([[1.0, 2.0, np.nan], [3.0, np.nan, 5.0]])
    valid = np.array([[True, True, False], [True, True, True]])
    frame = statistics_rows("x", values, valid, lag=np.arange(3))
    by_lag = frame.pivot_table(index="lag", columns="stat", values="value", dropna=False)
    assert by_lag.loc[1].isna().all()
    np.testing.assert_allclose(by_lag.loc[0], [2.0, 2.0, 1.2, 2.8], rtol=1e-12)  # mean, median, q10, q90
    np.testing.assert_allclose(by_lag.loc[2], 5.0)
    assert frame.loc[frame["lag"] == 2, "n"].eq(1).all()


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


@pytest.mark.parametrize(
    ("batch", "task", "field"),
    [
        (torch.zeros(2, 5, 2), AddingTask(length=5), "batch"),
        (
            Batch(torch.zeros(2, 5, 3), torch.zeros(2, 5), torch.ones(2, 5, dtype=bool), torch.full((2,), 5)),
            AddingTask(length=5),
            "batch.inputs",
        ),
        (AddingTask(length=5).sample(2), "adding", "task"),
    ],
)
def test_check_batch_names_the_bad_argument(batch, task, field):
    model = SequenceModel(make_cell("rnn", 2, 3), 2, 3, 1)
    with pytest.raises(ValueError, match=f"^{field}"):
        check_batch(model, batch, task)
