"""The on-disk results store: one folder per study, one sub-folder per run.

    <out>/<study>/study.json                 name, preset, axes, the grid (run id -> config)
    <out>/<study>/runs/<run_id>/config.json  the RunConfig (train + probe)
                                metrics.parquet   training history, one row per evaluation
                                analysis.parquet  probe rows (step, phase, quantity, t, lag, stat, value)
                                checkpoint.pt     the final state_dict (torch.save; load with weights_only)
                                status.json       status, steps, final metrics, error traceback if failed

Every file goes through ``seqmem.train.atomic_write`` (temp file beside it, then os.replace), and
status.json is written last: a run folder with a status.json is complete, one without is debris
from a kill and is wiped before the run is redone.  ``load_study`` turns a study folder into tidy
DataFrames with the config flattened into columns, warning (run id + path) about anything it
cannot read instead of failing.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from seqmem.train import atomic_write

if TYPE_CHECKING:
    from seqmem.sweep import RunConfig, Study
    from seqmem.train import RunResult

__all__ = [
    "StudyFrames",
    "write_json",
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


def _json_default(value: Any) -> Any:
    # numpy / torch scalars in metrics dicts
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def run_dir(study_dir: Path, run_id: str) -> Path:
    return Path(study_dir) / "runs" / run_id


def read_status(run_path: Path) -> dict | None:
    """The run's status.json, or None while the run is not complete (or its status is unreadable,
    which atomic writes rule out unless someone edits the file: the run is then redone)."""
    try:
        return json.loads((Path(run_path) / STATUS_FILE).read_text(encoding="utf-8"))
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


def _write_status(path: Path, run_config: RunConfig, status: str, elapsed_s: float, **outcome: Any) -> None:
    """status.json, always last: its presence marks the run complete."""
    fields = {
        "steps": None,
        "sequences_seen": None,
        "diverged_step": None,
        "final_metrics": {},
        "error": None,
    }
    write_json(
        path / STATUS_FILE,
        {"run_id": run_config.run_id, "status": status, "elapsed_s": elapsed_s, **fields, **outcome},
    )


def write_run(study_dir: Path, run_config: RunConfig, result: RunResult) -> Path:
    """Store one finished run (any status from train(): solved, budget_exhausted, diverged)."""
    path = _fresh_run_dir(study_dir, run_config)
    atomic_write(path / "metrics.parquet", lambda tmp: result.history.to_parquet(tmp, index=False))
    atomic_write(path / "analysis.parquet", lambda tmp: result.probes.to_parquet(tmp, index=False))
    atomic_write(path / "checkpoint.pt", lambda tmp: torch.save(result.state_dict, tmp))
    _write_status(
        path,
        run_config,
        result.status,
        result.elapsed_s,
        steps=result.steps,
        sequences_seen=result.sequences_seen,
        diverged_step=result.diverged_step,
        final_metrics=result.final_metrics,
    )
    return path


def write_failed_run(study_dir: Path, run_config: RunConfig, error: str, elapsed_s: float) -> Path:
    """Record a run that raised: its config and a 'failed' status carrying the traceback."""
    path = _fresh_run_dir(study_dir, run_config)
    _write_status(path, run_config, "failed", elapsed_s, error=error)
    return path


def write_study_info(study_dir: Path, study: Study, preset: str | None) -> Path:
    """study.json: what was asked for (name, preset, axes) and the whole grid, run id -> config."""
    path = Path(study_dir) / "study.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, study.info(preset))
    return path


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


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


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
    info = _read(f"study {study_dir.name}", study_dir / "study.json", _read_json) or {}
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
        status = _read(f"run {run_id}", folder / STATUS_FILE, _read_json)
        config = _read(f"run {run_id}", folder / "config.json", _read_json)
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
