"""The on-disk results store: one folder per study, one sub-folder per run.

    <out>/<study>/study.json                 name, preset, axes, the grid (run id -> config)
    <out>/<study>/runs/<run_id>/config.json  the RunConfig (train + probe)
                                metrics.parquet   training history, one row per evaluation
                                analysis.parquet  probe rows (step, phase, quantity, t, lag, stat, value)
                                checkpoint.pt     the final weights with the TrainConfig (seqmem.io;
                                                  seqmem.train.load_model rebuilds the model)
                                status.json       status, steps, final metrics, error traceback if failed

Every file goes through ``seqmem.io.atomic_write`` (temp file beside it, then os.replace), and
status.json is written last: a run folder with a status.json is complete, one without is debris
from a kill and is wiped before the run is redone.  ``load_study`` turns a study folder into tidy
DataFrames with the config flattened into columns, warning (run id + path) about anything it
cannot read instead of failing.

The store takes plain data (a ``RunConfig``, DataFrames, a state dict and a dict of outcome
facts), so it depends only on ``seqmem.config`` and ``seqmem.io``, never on training.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from seqmem.config import RunConfig
from seqmem.io import atomic_write, read_json, save_checkpoint, write_json

__all__ = [
    "StudyFrames",
    "run_dir",
    "read_status",
    "write_run",
    "write_failed_run",
    "write_study_info",
    "load_study",
    "flatten_config",
]

STATUS_FILE = "status.json"


# -- writing --------------------------------------------------------------------------------------


def run_dir(study_dir: Path, run_id: str) -> Path:
    return Path(study_dir) / "runs" / run_id


def read_status(run_path: Path) -> dict | None:
    """The run's status.json, or None while the run is not complete (or its status is unreadable,
    which atomic writes rule out unless someone edits the file: the run is then redone)."""
    try:
        return read_json(Path(run_path) / STATUS_FILE)
    except (FileNotFoundError, ValueError):
        return None


def _fresh_run_dir(study_dir: Path, run_config: RunConfig) -> Path:
    """An empty run folder: leftovers of an interrupted or earlier attempt are removed first."""
    path = run_dir(study_dir, run_config.run_id)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    write_json(path / "config.json", {"run_id": run_config.run_id, **run_config.to_dict()})
    return path


def _write_status(path: Path, run_config: RunConfig, outcome: Mapping[str, Any]) -> None:
    """status.json, always last: its presence marks the run complete."""
    fields = {
        "steps": None,
        "sequences_seen": None,
        "diverged_step": None,
        "final_metrics": {},
        "error": None,
    }
    write_json(path / STATUS_FILE, {"run_id": run_config.run_id, **fields, **outcome})


def write_run(
    study_dir: Path,
    run_config: RunConfig,
    *,
    history: pd.DataFrame,
    probes: pd.DataFrame,
    state_dict: Mapping[str, torch.Tensor],
    outcome: Mapping[str, Any],
) -> Path:
    """Store one finished run: its history and probe rows, its final weights, and ``outcome``,
    the facts for status.json (status -- solved, budget_exhausted or diverged --, elapsed_s,
    steps, sequences_seen, diverged_step, final_metrics; ``RunResult.summary()`` gives them)."""
    path = _fresh_run_dir(study_dir, run_config)
    atomic_write(path / "metrics.parquet", lambda tmp: history.to_parquet(tmp, index=False))
    atomic_write(path / "analysis.parquet", lambda tmp: probes.to_parquet(tmp, index=False))
    save_checkpoint(path / "checkpoint.pt", state_dict, run_config.train.to_dict())
    _write_status(path, run_config, outcome)
    return path


def write_failed_run(study_dir: Path, run_config: RunConfig, error: str, elapsed_s: float) -> Path:
    """Record a run that raised: its config and a 'failed' status carrying the traceback."""
    path = _fresh_run_dir(study_dir, run_config)
    _write_status(path, run_config, {"status": "failed", "elapsed_s": elapsed_s, "error": error})
    return path


def write_study_info(study_dir: Path, info: Mapping[str, Any]) -> Path:
    """study.json: ``info``, what was asked for (name, preset, axes, ...) and the whole grid,
    run id -> config (``seqmem.sweep.Study.info`` gives it)."""
    path = Path(study_dir) / "study.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_json(path, info)


# -- loading --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyFrames:
    """A loaded study: ``runs`` (one row per run), ``metrics`` (history rows), ``analysis`` (probe
    rows), each with ``run_id`` and the flattened config; ``info`` is study.json."""

    runs: pd.DataFrame
    metrics: pd.DataFrame
    analysis: pd.DataFrame
    info: dict


def flatten_config(train: dict) -> dict:
    """TrainConfig.to_dict() as flat columns: its fields, then each task parameter as its own
    column (prefixed 'task_params.' only if it would shadow a TrainConfig field)."""
    flat = {k: v for k, v in train.items() if k != "task_params"}
    for key, value in train.get("task_params", {}).items():
        flat[f"task_params.{key}" if key in train else key] = value
    return flat


def _warn(owner: str, path: Path, problem: str) -> None:
    warnings.warn(f"{owner}: {problem} at {path}; skipped", stacklevel=3)


def _read(owner: str, path: Path, reader: Callable[[Path], Any]) -> Any:
    """reader(path), or None with a warning naming the owner (run id) and the file when that file
    is missing or corrupt."""
    try:
        return reader(path)
    except FileNotFoundError:
        _warn(owner, path, "missing file")
    except Exception as err:  # any parse error: pyarrow, json, unicode ...
        first_line = (str(err).splitlines() or [""])[0]
        _warn(owner, path, f"unreadable file ({type(err).__name__}: {first_line})")
    return None


def _with_columns(frame: pd.DataFrame, columns: dict) -> pd.DataFrame:
    return frame.assign(**{k: [v] * len(frame) for k, v in columns.items()})


def load_study(path: str | Path) -> StudyFrames:
    """Load a study folder written by run_study into tidy DataFrames.

    The runs are those of study.json's grid (so a folder shared by presets shows the last preset
    run); runs not complete yet, and missing or corrupt files, are skipped with a warning naming the
    run id and path."""
    study_dir = Path(path)
    if not study_dir.is_dir():
        raise ValueError(f"path={str(path)!r} is invalid: must be a study folder written by run_study")
    info = _read(f"study {study_dir.name}", study_dir / "study.json", read_json) or {}
    if "grid" in info:
        run_ids = [entry["run_id"] for entry in info["grid"]]
    else:
        runs_root = study_dir / "runs"
        run_ids = sorted(p.name for p in runs_root.iterdir() if p.is_dir()) if runs_root.is_dir() else []

    runs, metrics, analysis = [], [], []
    for run_id in run_ids:
        folder = run_dir(study_dir, run_id)
        if not (folder / STATUS_FILE).exists():
            _warn(f"run {run_id}", folder, "run not complete (no status.json)")
            continue
        status = _read(f"run {run_id}", folder / STATUS_FILE, read_json)
        config = _read(f"run {run_id}", folder / "config.json", read_json)
        if status is None or config is None:
            continue
        columns = {"run_id": run_id, **flatten_config(config["train"])}
        final = {f"final_{k}": v for k, v in (status.get("final_metrics") or {}).items()}
        runs.append(
            {
                "run_id": run_id,
                "status": status["status"],
                "steps": status["steps"],
                "sequences_seen": status["sequences_seen"],
                "diverged_step": status["diverged_step"],
                "elapsed_s": status["elapsed_s"],
                **final,
                "solved": status["status"] == "solved",
                "error": status.get("error"),
                **columns,
            }
        )
        if status["status"] == "failed":
            continue  # a failed run has no metrics, analysis or checkpoint by design
        for name, rows in (("metrics.parquet", metrics), ("analysis.parquet", analysis)):
            frame = _read(f"run {run_id}", folder / name, pd.read_parquet)
            if frame is not None and len(frame):
                rows.append(_with_columns(frame, columns))

    def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"run_id": []})

    return StudyFrames(
        runs=pd.DataFrame(runs) if runs else pd.DataFrame({"run_id": []}),
        metrics=concat(metrics),
        analysis=concat(analysis),
        info=info,
    )
