"""Studies: a grid of training runs, executed resumably on local processes or a dask cluster.

A ``Study`` names base TrainConfig fields, ``axes`` whose product is the grid, ``presets`` that
override both (``quick`` for a laptop, ``full`` for the real thing), per-value ``overrides`` (say,
hidden size per cell), an optional ``ProbeConfig`` and the papers it reproduces (``literature``).
Every grid point is a ``seqmem.config.RunConfig`` whose ``run_id`` is a hash of its canonical
JSON, so a run's folder name *is* its configuration:

    study.grid("quick")  ->  [RunConfig, ...]           validated before anything runs
    run_study(study)     ->  <out>/<name>/runs/<run_id>/...   (see seqmem.results)

A rerun skips every run whose status.json exists and redoes the rest, so a sweep killed at any
moment (Ctrl-C, SIGKILL, a lost node) is finished by running it again.  An exception inside a run
is stored as status 'failed' with its traceback and the sweep goes on.  Each run is limited to one
torch thread in every executor, which is what makes their results identical.

Keys, used alike in ``base``, ``axes``, ``overrides`` and presets: a TrainConfig field, or
``task_params.<name>`` for one task parameter.  The ``task`` axis also takes ``(name, params)``
pairs or ``{"task": name, "task_params": params}`` dicts, which replace the task parameters whole
(``task_params.<name>`` axes then apply on top).  Override values are keyed by axis value (for the
``task`` axis: by task name).
"""

from __future__ import annotations

import dataclasses
import itertools
import multiprocessing
import multiprocessing.connection
import os
import re
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from seqmem import results
from seqmem.analysis.probe import make_probe
from seqmem.config import ProbeConfig, RunConfig, TrainConfig
from seqmem.train import RunResult, train

__all__ = ["Study", "run_study", "run_statuses", "train_run", "execute_run"]

TASK_AXIS = "task"
TASK_PARAM = "task_params."
PRESET_KEYS = ("base", "axes", "overrides", "probe")
STATUSES = ("solved", "budget_exhausted", "diverged", "failed")
TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))


# -- the study grid -------------------------------------------------------------------------------


def _check_key(where: str, key: object) -> None:
    param = isinstance(key, str) and key.startswith(TASK_PARAM) and len(key) > len(TASK_PARAM)
    ok = param or (isinstance(key, str) and key in TRAIN_FIELDS)
    if not ok:
        raise ValueError(
            f"{where} key {key!r} is invalid: must be a TrainConfig field "
            f"({', '.join(TRAIN_FIELDS)}) or 'task_params.<name>'"
        )


def _check_dict(where: str, value: object) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{where}={value!r} is invalid: must be a dict")
    return value


def _set(config: dict, key: str, value: Any) -> None:
    """Set a TrainConfig field, or one task parameter for 'task_params.<name>'."""
    if key.startswith(TASK_PARAM):
        config["task_params"] = {**config.get("task_params", {}), key[len(TASK_PARAM) :]: value}
    else:
        config[key] = dict(value) if key == "task_params" else value


def _task_value(value: object) -> tuple[str, dict | None]:
    """A value of the 'task' axis as (task name, its task_params or None to keep the base's)."""
    if isinstance(value, str):
        return value, None
    if isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[1], dict):
        return value[0], dict(value[1])
    if isinstance(value, dict) and "task" in value and set(value) <= {"task", "task_params"}:
        return value["task"], dict(value.get("task_params", {}))
    raise ValueError(
        f"axes['task'] value {value!r} is invalid: must be a task name, a (name, params) "
        "pair or a dict with keys 'task' and 'task_params'"
    )


def _override_key(axis: str, value: object) -> object:
    return _task_value(value)[0] if axis == TASK_AXIS else value


@dataclass(frozen=True)
class Study:
    """A named grid of runs.

    name:      folder name of the study (letters, digits, '_', '-', '.')
    base:      TrainConfig fields shared by every run (keys as in the module docstring)
    axes:      axis -> list of values; the grid is their product, in declaration order
    presets:   preset name -> {"base": {...}, "axes": {...}, "overrides": {...}, "probe": ...},
               each part optional, merged over the study's own (axes replaced whole, per axis)
    overrides: axis -> {axis value -> {key: value}}, applied to runs with that value
               (e.g. {"cell": {"lstm": {"hidden_size": 64}}}); a key may not also be an axis
    probe:     ProbeConfig recorded during every run, or None
    literature: keys of the papers the study reproduces (e.g. "hochreiter1997", "arjovsky2016"),
               written to study.json, where the report looks up its literature tables; they are
               no part of any run's identity
    Every preset's grid is built (and so validated) at construction.
    """

    name: str
    base: dict
    axes: dict = field(default_factory=dict)
    presets: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)
    probe: ProbeConfig | None = None
    literature: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise ValueError(
                f"name={self.name!r} is invalid: must be a folder name of letters, digits, '_', '-', '.'"
            )
        keys = self.literature
        if isinstance(keys, str) or not isinstance(keys, tuple | list):
            keys = [keys]
        if not all(isinstance(key, str) and re.fullmatch(r"[a-z][a-z0-9_]*", key) for key in keys):
            raise ValueError(
                f"literature={self.literature!r} is invalid: must be a tuple of paper keys "
                "(lower-case letters, digits, '_'), e.g. ('hochreiter1997',)"
            )
        object.__setattr__(self, "literature", tuple(keys))
        for preset_name, changes in _check_dict("presets", self.presets).items():
            for key in _check_dict(f"presets[{preset_name!r}]", changes):
                if key not in PRESET_KEYS:
                    raise ValueError(
                        f"presets[{preset_name!r}] key {key!r} is invalid: must be one of "
                        f"{', '.join(map(repr, PRESET_KEYS))}"
                    )
        for preset_name in self.presets or [None]:
            self.grid(preset_name)

    def resolve(self, preset: str | None) -> tuple[dict, dict, dict, ProbeConfig | None]:
        """(base, axes, overrides, probe) with the preset's changes applied, keys validated."""
        if preset is not None and preset not in self.presets:
            raise ValueError(
                f"preset={preset!r} is invalid: must be one of "
                f"{', '.join(map(repr, self.presets)) or 'None (the study has no presets)'}"
            )
        changes = self.presets[preset] if preset is not None else {}
        base: dict = {}
        for where, fields in (("base", self.base), (f"presets[{preset!r}]['base']", changes.get("base", {}))):
            for key, value in _check_dict(where, fields).items():
                _check_key(where, key)
                _set(base, key, value)
        axes = {**_check_dict("axes", self.axes), **_check_dict("preset axes", changes.get("axes", {}))}
        for axis, values in axes.items():
            _check_key("axes", axis)
            if not isinstance(values, (list, tuple)) or not values:
                raise ValueError(f"axes[{axis!r}]={values!r} is invalid: must be a non-empty list of values")
        extra = _check_dict("preset overrides", changes.get("overrides", {}))
        overrides = {
            axis: {**_check_dict("overrides", self.overrides).get(axis, {}), **extra.get(axis, {})}
            for axis in {**self.overrides, **extra}
        }
        for axis, by_value in overrides.items():
            if axis not in axes:
                raise ValueError(f"overrides[{axis!r}] is invalid: must name an axis ({', '.join(axes)})")
            known = [_override_key(axis, v) for v in axes[axis]]
            for value, fields in by_value.items():
                if value not in known:
                    raise ValueError(
                        f"overrides[{axis!r}][{value!r}] is invalid: must be a value of the "
                        f"axis ({', '.join(map(repr, known))})"
                    )
                for key in _check_dict(f"overrides[{axis!r}][{value!r}]", fields):
                    _check_key(f"overrides[{axis!r}][{value!r}]", key)
                    if key in axes:
                        raise ValueError(
                            f"overrides[{axis!r}][{value!r}] key {key!r} is invalid: it is an "
                            "axis too, so which value wins would be ambiguous"
                        )
        return base, axes, overrides, changes.get("probe", self.probe)

    def grid(self, preset: str | None = "quick") -> list[RunConfig]:
        """Every run of the preset, in axis order; raises a one-line ValueError on any bad field."""
        base, axes, overrides, probe = self.resolve(preset)
        configs: dict[str, tuple[dict, RunConfig]] = {}
        for values in itertools.product(*axes.values()):
            point = dict(zip(axes, values, strict=True))
            fields = {**base, "task_params": dict(base.get("task_params", {}))}
            if TASK_AXIS in point:  # first: it may replace the task parameters the others refine
                fields["task"], params = _task_value(point[TASK_AXIS])
                fields["task_params"] = fields["task_params"] if params is None else params
            for axis, value in point.items():
                if axis != TASK_AXIS:
                    _set(fields, axis, value)
            for axis, value in point.items():
                for key, override in overrides.get(axis, {}).get(_override_key(axis, value), {}).items():
                    _set(fields, key, override)
            try:
                train_config = TrainConfig(**fields)  # validates every field, task_params included
            except (TypeError, ValueError) as err:
                raise ValueError(f"study {self.name!r} preset {preset!r} run {point}: {err}") from None
            run = RunConfig(train_config, probe)
            if run.run_id in configs:
                raise ValueError(
                    f"study {self.name!r} preset {preset!r}: runs {configs[run.run_id][0]} and "
                    f"{point} are the same config; remove the duplicate axis value"
                )
            configs[run.run_id] = (point, run)
        return [run for _, run in configs.values()]

    def info(self, preset: str | None) -> dict:
        """JSON-safe description for study.json: what was asked for, and the grid it expanded to."""
        base, axes, overrides, probe = self.resolve(preset)
        return {
            "name": self.name,
            "preset": preset,
            "presets": list(self.presets),
            "base": base,
            "axes": {axis: list(values) for axis, values in axes.items()},
            "overrides": {axis: {str(v): f for v, f in by.items()} for axis, by in overrides.items()},
            "probe": None if probe is None else probe.to_dict(),
            "literature": list(self.literature),
            "grid": [{"run_id": run.run_id, **run.to_dict()} for run in self.grid(preset)],
        }


# -- one run --------------------------------------------------------------------------------------


def train_run(config: RunConfig, progress: bool = False) -> RunResult:
    """The default run function: train() with the study's probe as a callback."""
    callbacks = [make_probe(config.probe)] if config.probe is not None else []
    return train(config.train, callbacks=callbacks, progress=progress)


RunFn = Callable[[RunConfig, bool], RunResult]


def execute_run(run: RunConfig, study_dir: Path, run_fn: RunFn = train_run, progress: bool = False) -> None:
    """Run one grid point and store it in its run folder; an exception is stored, not raised."""
    threads = torch.get_num_threads()
    # One thread per run: workers on a machine don't oversubscribe it, and every executor computes
    # the same floating-point sums in the same order.
    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        result = run_fn(run, progress)
        results.write_run(
            study_dir,
            run,
            history=result.history,
            probes=result.probes,
            state_dict=result.state_dict,
            outcome=result.summary(),
        )
    except Exception:
        results.write_failed_run(study_dir, run, traceback.format_exc(), time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)


# -- executors: generators yielding (run, error) as runs finish; error is set only when the run
#    could not even be recorded (worker process died, disk full), so it stays to be redone. -------

Finished = Iterator[tuple[RunConfig, str | None]]


def _in_process(todo: list[RunConfig], study_dir: Path, run_fn: RunFn, progress: bool) -> Finished:
    for run in todo:
        execute_run(run, study_dir, run_fn, progress)
        yield run, None


def _init_worker() -> None:
    # Die with the sweep, however it ends (SIGKILL included): no orphan may go on training a run
    # that the rerun redoes.  The parent's sentinel becomes ready when the parent is gone.
    sentinel = multiprocessing.parent_process().sentinel
    threading.Thread(target=_exit_after, args=(sentinel,), daemon=True).start()


def _exit_after(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def _local(todo: list[RunConfig], study_dir: Path, run_fn: RunFn, workers: int) -> Finished:
    if "forkserver" in multiprocessing.get_all_start_methods():
        # Workers fork from a server that has imported torch and seqmem once, instead of paying
        # seconds of imports each (spawn); never plain fork, which is unsafe with threads.
        # torch._dynamo is what torch.optim imports lazily on its first use: seconds more per worker.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["seqmem.sweep", "torch._dynamo"])
    else:
        context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker)
    try:
        futures = {pool.submit(execute_run, run, study_dir, run_fn): run for run in todo}
        for future in as_completed(futures):
            yield futures[future], _error_of(future)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _dask(
    todo: list[RunConfig], study_dir: Path, run_fn: RunFn, workers: int, scheduler: str | None
) -> Finished:
    from dask.distributed import Client, LocalCluster
    from dask.distributed import as_completed as dask_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
    client = Client(cluster if cluster is not None else scheduler)
    try:
        futures = client.map(
            execute_run,
            todo,
            study_dir=study_dir,
            run_fn=run_fn,
            key=[f"seqmem-run-{run.run_id}" for run in todo],
        )
        runs = {future.key: run for future, run in zip(futures, todo, strict=True)}
        for future in dask_completed(futures):
            yield runs[future.key], _error_of(future)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _error_of(future: Any) -> str | None:
    try:
        future.result()
    except Exception as err:
        return f"{type(err).__name__}: {err}"
    return None


# -- the sweep ------------------------------------------------------------------------------------


def run_statuses(study_dir: Path, runs: list[RunConfig]) -> dict[str, str | None]:
    """run id -> its recorded status, or None while the run is not complete."""
    return {
        run.run_id: (results.read_status(results.run_dir(study_dir, run.run_id)) or {}).get("status")
        for run in runs
    }


def _summary(grid: list[RunConfig], statuses: dict[str, str | None], ran: set[str]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "cell": [run.train.cell for run in grid],
            "status": [statuses[run.run_id] or "failed" for run in grid],
            "ran": [run.run_id in ran for run in grid],
        }
    )
    by_cell = frame.groupby("cell", sort=False)
    table = pd.crosstab(frame["cell"], frame["status"])
    table = table.reindex(index=list(by_cell.groups), columns=list(STATUSES), fill_value=0)
    table.insert(0, "already_done", by_cell["ran"].apply(lambda r: int((~r).sum())))
    table.insert(0, "ran", by_cell["ran"].sum().astype(int))
    table.insert(0, "runs", by_cell.size())
    table.loc["total"] = table.sum()
    return table


def _default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_study(
    study: Study,
    preset: str | None = "quick",
    out: str | Path = "results",
    executor: str = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool | None = None,
    run_fn: RunFn = train_run,
    retry_failed: bool = False,
) -> Path:
    """Run every missing run of ``study.grid(preset)`` into ``<out>/<study.name>`` and return it.

    executor 'local': ``workers`` processes (default: one per core); workers=1 runs in this process
    (with per-run progress bars).  executor 'dask': a dask.distributed cluster at ``scheduler``, or a
    LocalCluster of ``workers`` processes if None; the workers must share ``out``'s filesystem.
    ``run_fn(run_config, progress) -> RunResult`` replaces train() (a module-level function, so
    workers can import it).  Failed runs are kept unless ``retry_failed``."""
    if executor not in ("local", "dask"):
        raise ValueError(f"executor={executor!r} is invalid: must be 'local' or 'dask'")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise ValueError(f"workers={workers!r} is invalid: must be an integer >= 1 or None (one per core)")
    if scheduler is not None and (executor != "dask" or workers is not None):
        raise ValueError(
            f"scheduler={scheduler!r} is invalid here: only with executor='dask' and "
            "workers=None (the cluster has its own workers)"
        )
    grid = study.grid(preset)  # validates every run before anything starts
    study_dir = (Path(out) / study.name).resolve()
    results.write_study_info(study_dir, study.info(preset))
    before = run_statuses(study_dir, grid)
    todo = [
        run for run in grid if before[run.run_id] is None or (retry_failed and before[run.run_id] == "failed")
    ]
    workers = min(workers or _default_workers(), max(len(todo), 1))
    show = sys.stderr.isatty() if progress is None else progress

    if executor == "dask" and todo:
        finished = _dask(todo, study_dir, run_fn, workers, scheduler)
    elif workers == 1:
        finished = _in_process(todo, study_dir, run_fn, show)
    else:
        finished = _local(todo, study_dir, run_fn, workers)
    start = time.perf_counter()
    with tqdm(
        total=len(grid),
        initial=len(grid) - len(todo),
        desc=f"{study.name} [{preset}]",
        unit="run",
        disable=not show,
    ) as bar:
        for run, error in finished:
            if error is not None:
                warnings.warn(
                    f"run {run.run_id} was not recorded and will be redone next time: {error}", stacklevel=2
                )
            elif results.read_status(results.run_dir(study_dir, run.run_id)) is None:
                warnings.warn(
                    f"run {run.run_id} finished but {results.run_dir(study_dir, run.run_id)} is "
                    "not visible here: executors must share the output folder",
                    stacklevel=2,
                )
            bar.update()
    table = _summary(grid, run_statuses(study_dir, grid), {run.run_id for run in todo})
    elapsed = time.perf_counter() - start
    print(f"\n{study.name} [{preset}]: ran {len(todo)} runs in {elapsed:.1f} s -> {study_dir}")
    print(table.to_string())
    return study_dir
