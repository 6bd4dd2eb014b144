"""fit_decay on synthetic decays with known answers, and rnn_gradient_bound."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from seqmem.analysis import fit_decay, rnn_gradient_bound
from seqmem.analysis.fits import mean_t_interval
from seqmem.analysis.scheme import scheme_rows
from seqmem.cells import make_cell
from seqmem.model import SequenceModel


def decay(factor, lags=200, start=3.0, noise=0.0, outliers=0, seed=0, quantity="grad_norm", stat="mean"):
    """Rows of norm = start * factor^lag, times log-normal noise, with a few wild outliers."""
    rng = np.random.default_rng(seed)
    lag = np.arange(lags)
    values = start * factor**lag * np.exp(noise * rng.standard_normal(lags))
    spoiled = rng.choice(np.arange(1, lags), size=outliers, replace=False)
    values[spoiled] *= np.exp(rng.choice([-8.0, 8.0], size=outliers))
    return scheme_rows(quantity, values, stat=stat, t=lags - 1 - lag, lag=lag, n=1)


@pytest.mark.parametrize("factor", [0.5, 0.9, 0.99])
def test_recovers_a_known_decay_factor_from_noisy_data(factor):
    fit = fit_decay(decay(factor, noise=0.3, outliers=20)).iloc[0]
    assert fit["decay_factor"] == pytest.approx(factor, rel=0.01)
    tau = -1 / math.log(factor)
    assert fit["tau"] == pytest.approx(tau, rel=0.1)
    assert fit["half_life"] == pytest.approx(tau * math.log(2), rel=0.1)


@pytest.mark.parametrize("factor", [0.5, 0.8, 0.9])
def test_memory_horizon_is_the_first_lag_below_threshold(factor):
    fit = fit_decay(decay(factor)).iloc[0]
    # 3 factor^k < 1e-6 * 3  <=>  k > ln(1e-6) / ln(factor)
    assert fit["memory_horizon"] == math.floor(math.log(1e-6) / math.log(factor)) + 1
    assert not fit["horizon_extrapolated"]
    assert fit["log10_ratio"] == pytest.approx(199 * math.log10(factor))


def test_horizon_beyond_the_range_is_extrapolated_and_flagged():
    fit = fit_decay(decay(0.9, lags=30)).iloc[0]
    assert fit["horizon_extrapolated"]
    assert fit["memory_horizon"] == pytest.approx(math.log(1e-6) / math.log(0.9))


def test_zero_norms_are_left_out_of_the_fit_but_count_for_the_horizon():
    frame = decay(0.8, lags=100)
    frame.loc[frame["lag"] >= 40, "value"] = 0.0  # underflow from lag 40 on
    fit = fit_decay(frame).iloc[0]
    assert fit["decay_factor"] == pytest.approx(0.8)
    assert fit["n_points"] == 40
    assert fit["memory_horizon"] == 40  # 0.8^39 = 1.7e-4 is still above 1e-6
    assert fit["log10_ratio"] == -math.inf


def test_growth_has_no_horizon():
    fit = fit_decay(decay(1.02)).iloc[0]
    assert fit["decay_factor"] == pytest.approx(1.02)
    assert fit["tau"] == math.inf and fit["memory_horizon"] == math.inf


def test_seeds_give_t_intervals_over_the_per_seed_fits():
    frames = [decay(0.9, noise=0.2, seed=s).assign(seed=s) for s in range(5)]
    frame = pd.concat(frames, ignore_index=True)
    summary = fit_decay(frame).iloc[0]
    per_seed = fit_decay(frame, by=["seed"])  # one row per seed
    assert summary["n_seeds"] == 5 and len(per_seed) == 5 and (per_seed["n_seeds"] == 1).all()
    values = per_seed["decay_factor"].to_numpy()
    low, high = stats.t.interval(0.95, 4, loc=values.mean(), scale=stats.sem(values))
    assert summary["decay_factor"] == pytest.approx(values.mean())
    assert summary["decay_factor_ci_low"] == pytest.approx(low)
    assert summary["decay_factor_ci_high"] == pytest.approx(high)
    assert low < 0.9 < high
    assert np.isnan(per_seed["decay_factor_ci_low"]).all()


@pytest.mark.parametrize("confidence", [0.5, 0.95, 0.99])
def test_mean_t_interval_is_scipys_student_t_interval(confidence):
    values = np.array([0.3, 0.9, 0.5, 0.71])
    low, high = stats.t.interval(confidence, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    assert mean_t_interval(values, confidence) == pytest.approx((values.mean(), low, high), rel=1e-12)


@pytest.mark.parametrize("values", [[0.4], [0.4, np.inf], [0.4, np.nan]])
def test_mean_t_interval_is_nan_without_two_finite_values(values):
    mean, low, high = mean_t_interval(np.array(values))
    assert np.isnan(low) and np.isnan(high)
    assert mean == pytest.approx(np.mean(values), nan_ok=True)


def test_groups_by_key_columns_and_takes_one_quantity_at_one_stat():
    frame = pd.concat(
        [
            decay(0.7).assign(cell="rnn", run_id="a"),
            decay(0.97).assign(cell="lstm", run_id="b"),
            decay(0.5, stat="median").assign(cell="rnn", run_id="a"),  # other stats are left alone
            decay(0.5, quantity="cell_grad_norm").assign(cell="lstm", run_id="b"),  # other quantities too
            scheme_rows("lyapunov", [-0.1], stat="mean", k=0).assign(
                cell="rnn", run_id="a"
            ),  # and rows without a lag
        ],
        ignore_index=True,
    )
    fits = fit_decay(frame, by=["cell"]).set_index("cell")
    assert fits.loc["rnn", "decay_factor"] == pytest.approx(0.7)
    assert fits.loc["lstm", "decay_factor"] == pytest.approx(0.97)
    assert fit_decay(frame, stat="median")["decay_factor"].iloc[0] == pytest.approx(0.5)
    assert fit_decay(frame, "cell_grad_norm")["decay_factor"].iloc[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="stat"):
        fit_decay(frame, stat="q90")


def test_per_sample_rows_are_averaged_by_lag():
    # two samples, stat missing: the curve is their mean at each lag
    first, second = decay(0.8, lags=50, stat=None), decay(0.8, lags=50, start=1.0, stat=None)
    frame = pd.concat([first.assign(sample=0), second.assign(sample=1)], ignore_index=True)
    fit = fit_decay(frame, stat=None).iloc[0]
    assert fit["decay_factor"] == pytest.approx(0.8) and fit["n_points"] == 50
    with pytest.raises(ValueError, match="stat"):
        fit_decay(frame)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"quantity": "jacobian_spectral"}, "quantity"),
        ({"by": ["cell"]}, "by"),
        ({"threshold": 0.0}, "threshold"),
        ({"confidence": 1.5}, "confidence"),
        ({"replicate": "nope"}, "replicate"),
    ],
)
def test_invalid_arguments(kwargs, field):
    with pytest.raises(ValueError, match=field):
        fit_decay(decay(0.9), **kwargs)


@pytest.mark.parametrize("preset", ["rnn", "relu_rnn", "irnn", "orthogonal_rnn"])
def test_gradient_bound_is_the_largest_singular_value(preset):
    cell = make_cell(preset, 2, 9)
    model = SequenceModel(cell, 2, 9, 1)
    frame = rnn_gradient_bound(model)
    assert frame.drop(columns=["quantity", "value"]).isna().all().all()
    bound = frame.set_index("quantity")["value"]
    expected = np.linalg.norm(cell.weight_hh.detach().numpy().astype(np.float64), ord=2)
    assert bound["gradient_bound"] == pytest.approx(expected, rel=1e-12)
    assert bound["sigma_max"] == pytest.approx(expected, rel=1e-12) and bound["derivative_bound"] == 1.0


@pytest.mark.parametrize("preset", ["lstm", "gru"])
def test_gradient_bound_needs_an_rnn(preset):
    model = SequenceModel(make_cell(preset, 2, 4), 2, 4, 1)
    with pytest.raises(ValueError, match="cell"):
        rnn_gradient_bound(model)


def test_gradient_bound_is_a_bound_on_every_step_jacobian():
    model = SequenceModel(make_cell("rnn", 2, 6), 2, 6, 1).double()
    bound = rnn_gradient_bound(model).set_index("quantity")["value"]["gradient_bound"]
    h = torch.randn(6, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(lambda s: model.cell(torch.ones(2).double(), s), h)
    assert torch.linalg.matrix_norm(jacobian, ord=2) <= bound
