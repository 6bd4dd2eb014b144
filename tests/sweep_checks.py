"""Checks shared by the sweep tests: two study folders hold the same results, and which runs a
sweep (re)wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from seqmem import results
from seqmem.io import load_checkpoint


def _status(run_path: Path) -> str:
    data = json.loads((run_path / "status.json").read_text())
    data.pop("elapsed_s")
    data.pop("files")  # digests: metrics.parquet holds timings; the contents are compared below
    return json.dumps(data, sort_keys=True)  # as text, so NaN metrics compare equal


def assert_same_runs(dir_a: Path, dir_b: Path) -> None:
    """Both study folders hold the same runs with the same contents, timings aside."""
    ids = sorted(p.name for p in (dir_a / "runs").iterdir())
    assert ids == sorted(p.name for p in (dir_b / "runs").iterdir())
    for run_id in ids:
        a, b = results.run_dir(dir_a, run_id), results.run_dir(dir_b, run_id)
        assert (a / "config.json").read_text() == (b / "config.json").read_text()
        assert _status(a) == _status(b)
        for name in ("metrics.parquet", "analysis.parquet"):
            frame_a, frame_b = (
                pd.read_parquet(p / name).drop(columns="elapsed_s", errors="ignore") for p in (a, b)
            )
            pd.testing.assert_frame_equal(frame_a, frame_b)
        (state_a, config_a), (state_b, config_b) = (load_checkpoint(p / "checkpoint.pt") for p in (a, b))
        assert state_a.keys() == state_b.keys() and config_a == config_b
        assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def stamps(study_dir: Path) -> dict[str, tuple[int, int]]:
    """run id -> identity of its status.json file: changes iff the run was (re)written."""
    files = study_dir.glob("runs/*/status.json")
    return {p.parent.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}
