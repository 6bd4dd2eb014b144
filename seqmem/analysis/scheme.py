"""The one column scheme of every analysis frame and of the probe's ``analysis.parquet``.

Every public analysis function returns a long, tidy frame: one row per measured number, with
the columns ``COLUMNS`` (the probe stores exactly those rows, with ``step, sequences_seen,
phase`` in front).  A column that does not apply to a row is missing (``<NA>``), never a
sentinel value:

    column    type     meaning
    quantity  str      what was measured (grad_norm, jacobian_spectral, gate_f, lyapunov, ...;
                       each function's docstring lists its own)
    stat      str      the statistic over the batch: mean, median, q10, q90 (gates add
                       saturated, Lyapunov exponents std); missing on a per-sample row (one
                       sequence's own value) and on a property of the weights (gradient bound)
    t         Int64    the time step measured (0-based: the step of h_t, c_t, x_t or a gate);
                       on a row over sequences of different lengths at one lag, the median of
                       their steps (rounded down); missing where no step applies (Lyapunov
                       exponents, gradient bound)
    lag       Int64    how many steps t lies before the step the quantity looks back from:
                       the reference step (gradients of the loss), each sequence's last step
                       (Jacobian products, gates, forget-gate products) or the output step
                       (connectivity: output step = t + lag); missing where none applies
    k         Int64    the index of a Lyapunov exponent or of a singular value (0 = largest)
    sample    Int64    the sequence within the batch, on per-sample rows
    n         Int64    how many numbers the statistic summarises: sequences (that reach that
                       step or lag), or sequences x units for gate activations
    value     float64  the number itself

``upgrade_probe_rows`` reads probe rows written by seqmem 0.1.0 (-1 for "no step"/"no lag",
the Lyapunov index in ``t``) into this scheme.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["COLUMNS", "COLUMN_TYPES", "PROBE_COLUMNS", "scheme_rows", "tidy", "upgrade_probe_rows"]

COLUMNS = ("quantity", "stat", "t", "lag", "k", "sample", "n", "value")
COLUMN_TYPES = {
    "quantity": "str",
    "stat": "str",
    "t": "Int64",
    "lag": "Int64",
    "k": "Int64",
    "sample": "Int64",
    "n": "Int64",
    "value": "float64",
}
PROBE_COLUMNS = ("step", "sequences_seen", "phase", *COLUMNS)
_OPTIONAL = ("stat", "t", "lag", "k", "sample", "n")


def scheme_rows(quantity: str | np.ndarray, value: np.ndarray | float, **columns: object) -> pd.DataFrame:
    """Rows in the scheme: ``value`` (one number per row), ``quantity`` and the optional columns
    given by name, each an array with one entry per row or one scalar for all rows; columns
    not given are missing."""
    unknown = set(columns) - set(_OPTIONAL)
    if unknown:
        raise ValueError(f"columns={sorted(unknown)} are invalid: must be among {list(_OPTIONAL)}")
    values = np.asarray(value, dtype=np.float64).reshape(-1)
    size = len(values)
    data = {}
    for name in COLUMNS:
        given = quantity if name == "quantity" else values if name == "value" else columns.get(name)
        kind = COLUMN_TYPES[name]
        if kind == "Int64":  # built from data and mask: pandas' conversion of a list is 10x slower
            missing = given is None
            numbers = (
                np.zeros(size, np.int64) if missing else np.broadcast_to(np.asarray(given, np.int64), size)
            )
            data[name] = pd.arrays.IntegerArray(numbers.copy(), np.full(size, missing))
        elif kind == "str":
            data[name] = pd.array(np.broadcast_to(np.asarray(given, dtype=object), size), dtype=kind)
        else:
            data[name] = values
    return pd.DataFrame(data)


def tidy(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The rows of ``parts`` (frames in the scheme) as one frame; an empty one keeps the columns."""
    parts = [part for part in parts if len(part)]
    if not parts:
        return pd.DataFrame({name: pd.array([], dtype=kind) for name, kind in COLUMN_TYPES.items()})
    return pd.concat(parts, ignore_index=True)


def upgrade_probe_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Probe rows as loaded from a study folder, in the current scheme, whichever seqmem wrote
    them: seqmem 0.1.0's rows had no k, sample and n columns, -1 in t and lag for "none", the
    Lyapunov exponent's index in t and the stat 'mean' on the gradient bound.  Rows already in
    the scheme are left as they are (t and lag are never negative there); other columns (run_id,
    config columns) are kept."""
    if frame.empty or "quantity" not in frame:
        return frame
    frame = frame.copy()
    for name in ("t", "lag", "k", "sample", "n"):
        column = frame[name] if name in frame else pd.Series(pd.NA, index=frame.index)
        frame[name] = column.astype("Int64")
    lyapunov = (frame["quantity"] == "lyapunov") & frame["k"].isna() & frame["t"].notna()
    frame.loc[lyapunov, "k"] = frame.loc[lyapunov, "t"]
    frame.loc[lyapunov, "t"] = pd.NA
    for name in ("t", "lag"):
        frame.loc[frame[name].lt(0).fillna(False), name] = pd.NA
    frame["stat"] = frame["stat"].astype("str")
    frame.loc[frame["quantity"] == "gradient_bound", "stat"] = np.nan
    return frame
