"""The one column scheme: building rows, an empty frame, and reading probe rows of seqmem 0.1.0."""

import numpy as np
import pandas as pd
import pytest

from seqmem.analysis import COLUMNS, PROBE_COLUMNS, upgrade_probe_rows
from seqmem.analysis.scheme import COLUMN_TYPES, scheme_rows, tidy


def test_rows_broadcast_scalars_and_leave_the_rest_missing():
    frame = scheme_rows("grad_norm", [0.5, 0.25], stat="mean", lag=np.array([0, 1]), n=3)
    assert tuple(frame.columns) == COLUMNS
    assert {c: str(t) for c, t in frame.dtypes.items()} == COLUMN_TYPES
    assert frame["quantity"].tolist() == ["grad_norm"] * 2 and frame["stat"].tolist() == ["mean"] * 2
    assert frame["lag"].tolist() == [0, 1] and frame["n"].tolist() == [3, 3]
    assert frame[["t", "k", "sample"]].isna().all().all()
    with pytest.raises(ValueError, match="columns"):
        scheme_rows("x", [1.0], step=3)


def test_tidy_of_nothing_keeps_columns_and_types():
    frame = tidy([scheme_rows("x", [])])
    assert frame.empty and {c: str(t) for c, t in frame.dtypes.items()} == COLUMN_TYPES


def probe_rows_0_1_0() -> pd.DataFrame:
    """Probe rows as seqmem 0.1.0 wrote them: -1 for no step / no lag, the Lyapunov exponent's
    index in t, stat 'mean' on the gradient bound, no k, sample or n columns."""
    return pd.DataFrame(
        {
            "step": [0, 0, 0, 0, 0],
            "sequences_seen": 0,
            "phase": "init",
            "quantity": ["grad_norm", "grad_norm", "lyapunov", "lyapunov", "gradient_bound"],
            "t": [9, 8, 0, 1, -1],
            "lag": [0, 1, -1, -1, -1],
            "stat": ["mean", "mean", "mean", "mean", "mean"],
            "value": [1.0, 0.5, -0.1, -0.3, 1.05],
        }
    ).astype({"phase": str, "quantity": str, "stat": str})


def test_rows_of_0_1_0_read_into_the_scheme():
    frame = upgrade_probe_rows(probe_rows_0_1_0().assign(run_id="r"))
    assert set(PROBE_COLUMNS) | {"run_id"} == set(frame.columns)
    assert frame["t"].tolist()[:2] == [9, 8] and frame["t"].iloc[2:].isna().all()
    assert frame["lag"].tolist()[:2] == [0, 1] and frame["lag"].iloc[2:].isna().all()
    assert frame["k"].iloc[2:4].tolist() == [0, 1] and frame["k"].drop(index=[2, 3]).isna().all()
    assert frame["stat"].tolist()[:4] == ["mean"] * 4 and pd.isna(frame["stat"].iloc[4])
    assert frame[["sample", "n"]].isna().all().all()
    np.testing.assert_array_equal(frame["value"], probe_rows_0_1_0()["value"])


def test_rows_in_the_scheme_are_left_alone_also_beside_old_ones():
    # a study resumed by a newer seqmem holds both kinds of run; load_study concatenates them
    new = scheme_rows("lyapunov", [-0.2], stat="mean", k=4, n=8).assign(
        step=0, sequences_seen=0, phase="init"
    )
    both = pd.concat([probe_rows_0_1_0(), new[list(PROBE_COLUMNS)]], ignore_index=True)
    frame = upgrade_probe_rows(both)
    assert frame["k"].iloc[2:4].tolist() == [0, 1] and pd.isna(frame["k"].iloc[4])
    assert frame["k"].iloc[5] == 4 and pd.isna(frame["t"].iloc[5]) and frame["n"].iloc[5] == 8
    pd.testing.assert_frame_equal(upgrade_probe_rows(frame), frame)


def test_probe_rows_survive_parquet(tmp_path):
    frame = tidy(
        [scheme_rows("grad_norm", [0.5], stat="mean", t=3, lag=0, n=4), scheme_rows("gradient_bound", [1.1])]
    )
    frame.to_parquet(tmp_path / "analysis.parquet", index=False)
    again = pd.read_parquet(tmp_path / "analysis.parquet")
    pd.testing.assert_frame_equal(again, frame)
    pd.testing.assert_frame_equal(upgrade_probe_rows(again), again)
