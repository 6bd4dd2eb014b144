"""The on-disk results store: one folder per study, one sub-folder per run.

    <out>/<study>/study.json                 name, preset, axes, the grid (run id -> config)
    <out>/<study>/locks/<run_id>.lock        the run's claim (an OS-level lock; see claim_run)
    <out>/<study>/runs/<run_id>/config.json  the RunConfig (train + probe)
                                metrics.parquet   training history, one row per evaluation
                                analysis.parquet  probe rows (step, phase, quantity, t, lag, stat, value)
                                checkpoint.pt     the final weights with the TrainConfig (seqmem.io;
                                                  seqmem.train.load_model rebuilds the model)
                                status.json       status, steps, final metrics, error traceback if
                                                  failed, and the size and SHA-256 of every other file

Every file goes through ``seqmem.io.atomic_write`` (temp file beside it, then os.replace), and
status.json is written last: a run folder with a status.json is complete, one without is debris
from a kill and is wiped before the run is redone.  A run counts as stored only while its files
match the digests its status.json lists (``stored_status``): a truncated or altered file makes
it a run to redo.  ``claim_run`` holds a run's lock while one process trains and writes it, so
sweeps sharing a folder never train a run twice or write into each other's folders; the
operating system releases the lock of a process that dies, so a killed sweep's claims pass on.

``load_study`` turns a study folder into tidy DataFrames with the config flattened into columns,
warning (run id + path) about anything it cannot read instead of failing, and listing those
runs in ``StudyFrames.problems``.

The store takes plain data (a ``RunConfig``, DataFrames, a state dict and a dict of outcome
facts), so it depends only on ``seqmem.config`` and ``seqmem.io``, never on training.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from filelock import FileLock, Timeout

from seqmem.config import RunConfig
from seqmem.io import atomic_write, file_digest, load_checkpoint, read_json, save_checkpoint, write_json

__all__ = [
    "STATUSES",
    "StudyFrames",
    "run_dir",
    "read_status",
    "stored_status",
    "run_damage",
    "claim_run",
    "discard_run",
    "write_run",
    "write_failed_run",
    "write_study_info",
    "load_study",
    "flatten_config",
]

STATUS_FILE = "status.json"
STATUSES = ("solved", "budget_exhausted", "diverged", "failed")
# what a finished run's folder holds besides status.json (a failed run: config.json only)
RUN_FILES = ("config.json", "metrics.parquet", "analysis.parquet", "checkpoint.pt")


# -- writing --------------------------------------------------------------------------------------


def run_dir(study_dir: Path, run_id: str) -> Path:
    return Path(study_dir) / "runs" / run_id


def read_status(run_path: Path) -> dict | None:
    """The run's status.json, or None while the run is not complete -- or when the file is not
    a JSON object with a known ``status``, which atomic writes rule out unless someone edits
    it: the run is then redone."""
    try:
        status = read_json(Path(run_path) / STATUS_FILE)
    except (FileNotFoundError, ValueError):
        return None
    valid = isinstance(status, dict) and status.get("status") in STATUSES
    return status if valid and isinstance(status.get("files", {}), dict) else None


def run_damage(run_path: Path, status: Mapping[str, Any]) -> dict[str, str]:
    """File name -> what is wrong with it, for the files of a complete run (``status`` is its
    status.json) that are missing or differ from the digests status.json recorded; empty if
    the run is intact.  Runs stored by seqmem 0.1.0 list no digests: their files are read."""
    run_path = Path(run_path)
    digests = status.get("files")
    if digests is None:
        names = RUN_FILES if status["status"] != "failed" else RUN_FILES[:1]
        problems = {name: _legacy_damage(run_path / name) for name in names}
        return {name: problem for name, problem in problems.items() if problem is not None}
    damage = {}
    for name, expected in digests.items():
        try:
            found = file_digest(run_path / name)
        except FileNotFoundError:
            damage[name] = "missing file"
            continue
        if found["bytes"] != expected["bytes"]:
            damage[name] = f"damaged file ({found['bytes']} bytes, not the {expected['bytes']} recorded)"
        elif found["sha256"] != expected["sha256"]:
            damage[name] = "damaged file (its SHA-256 is not the one recorded)"
    return damage


def stored_status(study_dir: Path, run_id: str) -> dict | None:
    """The run's status.json if the run is stored complete and intact, else None (a run to do)."""
    path = run_dir(study_dir, run_id)
    status = read_status(path)
    return status if status is not None and not run_damage(path, status) else None


@contextmanager
def claim_run(study_dir: Path, run_id: str, wait: bool) -> Iterator[bool]:
    """Hold the run's lock (``locks/<run_id>.lock``) for the block: yields True once this process
    holds it, or at once False if another process holds it and ``wait`` is False.  The lock is
    the operating system's (flock), so it is released when its holder exits or is killed."""
    lock_path = Path(study_dir) / "locks" / f"{run_id}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path, timeout=-1 if wait else 0)
    try:
        lock.acquire()
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def _fresh_run_dir(study_dir: Path, run_config: RunConfig) -> Path:
    """An empty run folder: leftovers of an interrupted or earlier attempt are removed first."""
    path = run_dir(study_dir, run_config.run_id)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    write_json(path / "config.json", {"run_id": run_config.run_id, **run_config.to_dict()})
    return path


def _write_status(path: Path, run_config: RunConfig, outcome: Mapping[str, Any]) -> None:
    """status.json, always last: its presence marks the run complete, and the digests of the
    files written before it let a reader verify them."""
    fields = {
        "steps": None,
        "sequences_seen": None,
        "diverged_step": None,
        "final_metrics": {},
        "error": None,
    }
    files = {name: file_digest(path / name) for name in RUN_FILES if (path / name).exists()}
    write_json(path / STATUS_FILE, {"run_id": run_config.run_id, **fields, **outcome, "files": files})


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


def discard_run(study_dir: Path, run_id: str) -> None:
    """Remove what an attempt left of a run (say, after the disk refused part of it): the space
    comes back, and the run is one to do."""
    shutil.rmtree(run_dir(study_dir, run_id), ignore_errors=True)


def write_study_info(study_dir: Path, info: Mapping[str, Any]) -> Path:
    """study.json: ``info``, what was asked for (name, preset, axes, ...) and the whole grid,
    run id -> config (``seqmem.sweep.Study.info`` gives it)."""
    path = Path(study_dir) / "study.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_json(path, info)


# -- loading --------------------------------------------------------------------------------------

PROBLEM_COLUMNS = ["run_id", "path", "problem"]


@dataclass(frozen=True)
class StudyFrames:
    """A loaded study: ``runs`` (one row per run), ``metrics`` (history rows), ``analysis`` (probe
    rows), each with ``run_id`` and the flattened config; ``info`` is study.json (``{"name":
    <folder name>}`` without one); ``problems`` lists what could not be loaded, one row per
    file: run_id (None for study.json), path, problem (missing, incomplete, damaged ...)."""

    runs: pd.DataFrame
    metrics: pd.DataFrame
    analysis: pd.DataFrame
    info: dict
    problems: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=PROBLEM_COLUMNS))


def flatten_config(train: dict) -> dict:
    """TrainConfig.to_dict() as flat columns: its fields, then each task parameter as its own
    column (prefixed 'task_params.' only if it would shadow a TrainConfig field)."""
    flat = {k: v for k, v in train.items() if k != "task_params"}
    for key, value in train.get("task_params", {}).items():
        flat[f"task_params.{key}" if key in train else key] = value
    return flat


def _try_read(path: Path, reader: Callable[[Path], Any]) -> tuple[Any, str | None]:
    """(reader(path), None), or (None, what is wrong) when the file is missing or unreadable."""
    try:
        return reader(path), None
    except FileNotFoundError:
        return None, "missing file"
    except Exception as err:  # any parse error: pyarrow, json, torch, unicode ...
        return None, f"unreadable file ({type(err).__name__}: {(str(err).splitlines() or [''])[0]})"


def _legacy_damage(path: Path) -> str | None:
    """What is wrong with a file of a run stored before status.json listed digests, or None."""
    readers = {".json": read_json, ".parquet": pd.read_parquet, ".pt": load_checkpoint}
    return _try_read(path, readers[path.suffix])[1]


def _study_grid(info: object) -> list[str] | None:
    """The run ids of study.json's grid, or None if it has no well-formed one."""
    grid = info.get("grid") if isinstance(info, dict) else None
    if not isinstance(grid, list) or not all(
        isinstance(e, dict) and isinstance(e.get("run_id"), str) for e in grid
    ):
        return None
    return [entry["run_id"] for entry in grid]


def _with_columns(frame: pd.DataFrame, columns: dict) -> pd.DataFrame:
    return frame.assign(**{k: [v] * len(frame) for k, v in columns.items()})


def load_study(path: str | Path) -> StudyFrames:
    """Load a study folder written by run_study into tidy DataFrames.

    The runs are those of study.json's grid (so a folder shared by presets shows the last preset
    run), or every run folder when study.json has none.  Runs not complete yet, and missing,
    damaged or unreadable files, are skipped with a warning naming the run id and path, and
    listed in ``problems``."""
    study_dir = Path(path)
    if not study_dir.is_dir():
        raise ValueError(f"path={str(path)!r} is invalid: must be a study folder written by run_study")
    problems: list[dict] = []

    def problem(run_id: str | None, where: Path, what: str) -> None:
        owner = f"run {run_id}" if run_id is not None else f"study {study_dir.name}"
        warnings.warn(f"{owner}: {what} at {where}; skipped", stacklevel=3)
        problems.append({"run_id": run_id, "path": str(where), "problem": what})

    info, error = _try_read(study_dir / "study.json", read_json)
    run_ids = _study_grid(info)
    if error is None and run_ids is None:
        error = "no grid of runs (must be a JSON object with a list 'grid' of {'run_id': ...})"
    if error is not None:
        problem(None, study_dir / "study.json", error)
    info = info if isinstance(info, dict) else {"name": study_dir.name}
    if run_ids is None:
        runs_root = study_dir / "runs"
        run_ids = sorted(p.name for p in runs_root.iterdir() if p.is_dir()) if runs_root.is_dir() else []

    runs, metrics, analysis = [], [], []
    for run_id in run_ids:
        folder = run_dir(study_dir, run_id)
        status = read_status(folder)
        if status is None:
            what = "run not complete (no status.json)"
            if (folder / STATUS_FILE).exists():
                what = (
                    "unreadable status.json (must be a JSON object with a 'status' of "
                    + ", ".join(STATUSES)
                    + ")"
                )
            problem(run_id, folder if what.startswith("run not") else folder / STATUS_FILE, what)
            continue
        damaged = run_damage(folder, status)
        for name, what in damaged.items():
            problem(run_id, folder / name, what)
        config, error = (
            (None, None) if "config.json" in damaged else _try_read(folder / "config.json", read_json)
        )
        if error is not None:
            problem(run_id, folder / "config.json", error)
        if config is None:
            continue
        columns = {"run_id": run_id, **flatten_config(config["train"])}
        final = {f"final_{k}": v for k, v in (status.get("final_metrics") or {}).items()}
        runs.append(
            {
                "run_id": run_id,
                "status": status["status"],
                "steps": status.get("steps"),
                "sequences_seen": status.get("sequences_seen"),
                "diverged_step": status.get("diverged_step"),
                "elapsed_s": status.get("elapsed_s"),
                **final,
                "solved": status["status"] == "solved",
                "error": status.get("error"),
                **columns,
            }
        )
        if status["status"] == "failed":
            continue  # a failed run has no metrics, analysis or checkpoint by design
        for name, rows in (("metrics.parquet", metrics), ("analysis.parquet", analysis)):
            if name in damaged:
                continue
            frame, error = _try_read(folder / name, pd.read_parquet)
            if error is not None:
                problem(run_id, folder / name, error)
            elif len(frame):
                rows.append(_with_columns(frame, columns))

    def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"run_id": []})

    return StudyFrames(
        runs=pd.DataFrame(runs) if runs else pd.DataFrame({"run_id": []}),
        metrics=concat(metrics),
        analysis=concat(analysis),
        info=info,
        problems=pd.DataFrame(problems, columns=PROBLEM_COLUMNS),
    )
