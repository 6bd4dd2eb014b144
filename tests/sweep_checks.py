"""What the sweep and results tests share: a study whose runs last long enough to be killed, ways
to damage a file, and checks that two study folders hold the same results and which runs a
sweep (re)wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from seqmem import results
from seqmem.io import load_checkpoint

# A study of six runs long enough (~0.5 s each) to kill part-way; a script or module defining it
# starts with this text.
KILLABLE_STUDY = """
from seqmem.config import ProbeConfig
from seqmem.sweep import Study

STUDY = Study(
    name="killable",
    base={"task": "adding", "task_params.length": 30, "hidden_size": 16, "max_steps": 100,
          "eval_every": 25, "eval_batch_size": 64},
    axes={"cell": ["gru", "lstm"], "seed": [0, 1, 2]},
    presets={"quick": {}},
    probe=ProbeConfig(quantities=("grad_norm", "jacobian", "gates"), every_n_evals=2, batch_size=16,
                      jacobian_batch_size=2),
)
"""


def truncate(path: Path) -> None:
    """What a kill or a full disk leaves of a file written in place: its first half."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_a_byte(path: Path) -> None:
    """A file of the right size with one byte altered (a bad disk block, a careless edit)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


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
