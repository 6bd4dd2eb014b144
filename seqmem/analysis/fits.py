"""Numbers that summarise a decay curve: decay factor, time constant, half-life, memory horizon.

``fit_decay`` fits log(norm) = a - lag / tau by Siegel's repeated-medians regression
(``scipy.stats.siegelslopes``: robust to up to half the points being outliers, such as the
plateau of a curve that has underflowed).  ``rnn_gradient_bound`` is the per-step factor
Pascanu, Mikolov & Bengio (2013) bound the decay by, to set beside the fitted one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from seqmem.analysis.scheme import scheme_rows
from seqmem.model import SequenceModel

__all__ = ["METRICS", "fit_decay", "mean_t_interval", "rnn_gradient_bound"]

METRICS = ("decay_factor", "tau", "half_life", "memory_horizon", "log10_ratio", "intercept")
REPLICATE_COLUMNS = ("run_id", "seed")


def _fit(lags: np.ndarray, values: np.ndarray, threshold: float) -> dict[str, float]:
    """One curve (one value per lag, lags >= 0 ascending)."""
    usable = np.isfinite(values) & (values > 0)  # zeros (dead units, underflow) have no logarithm
    result = dict.fromkeys(METRICS, math.nan) | {"horizon_extrapolated": False, "n_points": int(usable.sum())}
    if usable.sum() < 2:
        return result
    fit = stats.siegelslopes(np.log(values[usable]), lags[usable])
    slope, intercept = float(fit.slope), float(fit.intercept)
    start = values[0] if lags[0] == 0 and values[0] > 0 else math.exp(intercept)
    floor = threshold * start
    below = lags[np.isfinite(values) & (values < floor)]
    if below.size:
        horizon, extrapolated = float(below[0]), False
    elif slope < 0:  # where the fitted line crosses the floor
        horizon, extrapolated = (math.log(floor) - intercept) / slope, True
    else:
        horizon, extrapolated = math.inf, True
    tau = -1.0 / slope if slope < 0 else math.inf
    with np.errstate(divide="ignore"):
        log10_ratio = float(np.log10(values[-1] / start))
    return result | {
        "decay_factor": math.exp(slope),
        "tau": tau,
        "half_life": tau * math.log(2.0),
        "memory_horizon": horizon,
        "log10_ratio": log10_ratio,
        "intercept": intercept,
        "horizon_extrapolated": extrapolated,
    }


def mean_t_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean of independent replicates and its Student-t confidence interval,
    mean ± t_{(1 + confidence)/2, n-1} · s / √n with s the sample standard deviation.  The
    interval is NaN with fewer than 2 values or any non-finite one."""
    mean = float(np.mean(values))
    if values.size < 2 or not np.all(np.isfinite(values)):
        return mean, math.nan, math.nan
    half = (
        stats.t.ppf(0.5 + confidence / 2, values.size - 1) * np.std(values, ddof=1) / math.sqrt(values.size)
    )
    return mean, mean - half, mean + half


def _curve(frame: pd.DataFrame, quantity: str, stat: str | None) -> pd.DataFrame:
    """The rows of ``quantity`` at ``stat`` (None: the per-sample rows, whose stat is missing)
    that have a lag."""
    missing = [c for c in ("quantity", "stat", "lag", "value") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"frame columns={list(frame.columns)} are invalid: must include {missing} "
            "(rows in seqmem.analysis.COLUMNS)"
        )
    known = sorted(frame["quantity"].dropna().unique())
    if quantity not in known:
        raise ValueError(f"quantity={quantity!r} is invalid: must be one of the frame's quantities {known}")
    rows = frame[frame["quantity"] == quantity]
    stats = sorted(rows["stat"].dropna().unique())
    rows = rows[rows["stat"].isna()] if stat is None else rows[rows["stat"] == stat]
    if rows.empty:
        raise ValueError(
            f"stat={stat!r} is invalid for {quantity}: must be one of {stats}"
            + (" or None (per-sample rows)" if stat is not None else "")
        )
    return rows[rows["lag"].notna()]


def fit_decay(
    frame: pd.DataFrame,
    quantity: str = "grad_norm",
    *,
    by: Sequence[str] = (),
    replicate: str | None = "auto",
    stat: str | None = "mean",
    threshold: float = 1e-6,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Fit log(norm) = intercept - lag / tau to each curve of ``quantity`` in ``frame`` (rows in
    ``seqmem.analysis.COLUMNS``, as every analysis function returns and the probe stores, plus
    any key columns), one fit per group of ``by`` columns and per replicate.  The curve is the
    statistic ``stat`` by lag; ``stat=None`` takes per-sample rows (``per_sample=True``).

    Per fit: decay_factor = exp(-1/tau) per step (> 1 means growth; tau, half_life = tau ln 2 and
    memory_horizon are then inf), log10_ratio = log10(norm at the largest lag / norm at lag 0),
    and memory_horizon: the first lag whose norm is below ``threshold`` (1e-6) times the lag-0
    norm.  A float32 gradient that small is also below float32's relative resolution (1.2e-7)
    against the lag-0 one, and underflowed zeros count as below.  If no lag in the range gets
    there, the horizon is where the fitted line crosses the threshold, flagged
    ``horizon_extrapolated``.  Non-positive norms are left out of the fit.  Several rows at
    one lag (per-sample rows, several probes) are averaged first.

    ``replicate``: the column that tells independent runs apart; 'auto' takes 'run_id', else
    'seed', if present and not in ``by``.  With replicates every metric is their mean with a
    t-distribution ``confidence`` interval (``<metric>_ci_low``, ``<metric>_ci_high``; NaN with one
    replicate); n_seeds counts them, horizon_extrapolated is true if any fit's was.  For one row
    per replicate pass it in ``by``.  Columns: by..., n_seeds, then for each of decay_factor,
    tau, half_life, memory_horizon, log10_ratio, intercept the mean and its CI, then
    horizon_extrapolated and n_points (points fitted, summed over replicates).
    """
    by = list(by)
    for column in by:
        if column not in frame.columns:
            raise ValueError(
                f"by={column!r} is invalid: must be one of the frame's columns {list(frame.columns)}"
            )
    if replicate == "auto":
        replicate = next((c for c in REPLICATE_COLUMNS if c in frame.columns and c not in by), None)
    elif replicate is not None and (replicate not in frame.columns or replicate in by):
        raise ValueError(
            f"replicate={replicate!r} is invalid: must be a frame column not in by, 'auto' or None"
        )
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold={threshold!r} is invalid: must be in (0, 1)")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r} is invalid: must be in (0, 1)")
    rows = _curve(frame, quantity, stat)
    keys = by + ([replicate] if replicate else [])
    fits = []
    for key, group in rows.groupby(keys, sort=True, dropna=False) if keys else [((), rows)]:
        curve = group.groupby("lag")["value"].mean()
        fit = _fit(curve.index.to_numpy(np.float64), curve.to_numpy(np.float64), threshold)
        fits.append(dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)) | fit)
    per_fit = pd.DataFrame(fits, columns=[*keys, *METRICS, "horizon_extrapolated", "n_points"])
    summaries = []
    for key, group in per_fit.groupby(by, sort=True, dropna=False) if by else [((), per_fit)]:
        summary = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)) | {
            "n_seeds": len(group)
        }
        for metric in METRICS:
            mean, low, high = mean_t_interval(group[metric].to_numpy(np.float64), confidence)
            summary |= {metric: mean, f"{metric}_ci_low": low, f"{metric}_ci_high": high}
        summary |= {
            "horizon_extrapolated": bool(group["horizon_extrapolated"].any()),
            "n_points": int(group["n_points"].sum()),
        }
        summaries.append(summary)
    return pd.DataFrame(summaries)


def rnn_gradient_bound(model: SequenceModel) -> pd.DataFrame:
    """Pascanu, Mikolov & Bengio (2013): ||dh_t/dh_{t-1}|| <= sigma_max(W_hh) * gamma, with gamma
    the bound of the nonlinearity's derivative (1 for tanh and for ReLU), so gradients shrink at
    least as fast as ``bound`` per step when it is below 1.  A property of the weights alone, so
    it takes the model only.  Rows (``seqmem.analysis.COLUMNS``, every column but quantity and
    value missing): sigma_max, derivative_bound and gradient_bound (their product).  Only for
    cells whose step has that form (the cell's ``gradient_bound()``: tanh/ReLU RNN cells)."""
    cell = model.cell
    bound = cell.gradient_bound()
    if bound is None:
        raise ValueError(
            f"model.cell={type(cell).__name__} is invalid: rnn_gradient_bound needs a cell of the form "
            "h_t = phi(W_hh h_{t-1} + ...) (one with a gradient_bound(), e.g. an RNNCell)"
        )
    values = {
        "sigma_max": bound.sigma_max,
        "derivative_bound": bound.derivative_bound,
        "gradient_bound": bound.bound,
    }
    return scheme_rows(np.array(list(values), dtype=object), np.array(list(values.values())))
