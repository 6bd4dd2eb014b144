"""``run_study``: the sweep itself -- check everything, skip what is stored, run the rest on an
executor while telling the user how it goes, and say what became of every run."""

from __future__ import annotations

import functools
import math
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from seqmem import results
from seqmem.config import RunConfig
from seqmem.io import check_writable
from seqmem.results import STATUSES
from seqmem.sweep.executors import DaskCluster, InProcess, ProcessPool, SlurmConfig, start_dask
from seqmem.sweep.grid import Study
from seqmem.sweep.runs import Job, RunFn, RunOutcome, execute_run, last_line, train_run
from seqmem.train import resolve_device

__all__ = ["run_study", "run_statuses"]


def _wait_for_workers(client: Any, timeout_s: float, say: Callable[[str], None]) -> None:
    """Return once the cluster has a worker; say so every HEARTBEAT_S seconds until then, and
    raise a TimeoutError after ``timeout_s``."""
    where = client.scheduler.address
    start = time.monotonic()
    while True:
        waited = time.monotonic() - start
        try:
            client.wait_for_workers(1, timeout=max(min(HEARTBEAT_S, timeout_s - waited), 0.1))
            return
        except TimeoutError:
            waited = time.monotonic() - start
            if waited >= timeout_s:
                raise TimeoutError(
                    f"no dask worker joined the scheduler at {where} within {timeout_s:g} s: start "
                    f"workers (`dask worker {where}`, or check the SLURM queue) or wait longer "
                    "with --wait-workers"
                ) from None
            say(
                f"waiting for dask workers at {where}: none after {waited:.0f} s "
                f"(giving up at {timeout_s:g} s)"
            )


# -- progress -------------------------------------------------------------------------------------

HEARTBEAT_S = 60.0  # seconds between "still running" lines when the output is not a terminal


def _describe(run: RunConfig) -> str:
    params = ", ".join(f"{k}={v}" for k, v in run.train.task_params.items())
    return f"{run.run_id} {run.train.cell} {run.train.task}({params})"


class _Progress:
    """What a sweep tells its user: a tqdm bar when stderr is a terminal; when stdout is not
    (a log file, a cluster job), one line per finished run and a heartbeat line every
    HEARTBEAT_S seconds.  Other messages are one line each, on stdout."""

    def __init__(self, title: str, total: int, done: int, bar: bool, lines: bool) -> None:
        self.title, self.total, self.done, self.lines = title, total, done, lines
        self.start = time.monotonic()
        self.lock = threading.Lock()
        self.bar = tqdm(total=total, initial=done, desc=title, unit="run", disable=not bar)
        self.stopped = threading.Event()
        self.heartbeat = threading.Thread(target=self._beat, daemon=True)
        if lines:
            self.heartbeat.start()

    def say(self, text: str) -> None:
        with self.lock:
            tqdm.write(text, file=sys.stdout)
            sys.stdout.flush()

    def finished(self, run: RunConfig, outcome: RunOutcome) -> None:
        if outcome.status is not None:
            self.done += 1
            self.bar.update()
        if self.lines or outcome.action in ("not_stored", "lost"):
            seconds = "" if outcome.elapsed_s is None else f" {outcome.elapsed_s:.1f} s"
            what = outcome.status or outcome.action.replace("_", " ")
            source = " (stored by another process)" if outcome.action == "found" else ""
            error = f": {outcome.error}" if outcome.error else ""
            self.say(f"[{self.done}/{self.total}] {_describe(run)} {what}{seconds}{source}{error}")

    def _beat(self) -> None:
        while not self.stopped.wait(HEARTBEAT_S):
            elapsed = time.monotonic() - self.start
            self.say(
                f"{self.title}: {self.done}/{self.total} runs done, {elapsed:.0f} s elapsed, still running"
            )

    def close(self) -> None:
        self.stopped.set()
        self.bar.close()


# -- the sweep ------------------------------------------------------------------------------------


def run_statuses(study_dir: Path, runs: list[RunConfig]) -> dict[str, str | None]:
    """run id -> its stored status, or None while the run is not stored complete and intact."""
    return {run.run_id: (results.stored_status(study_dir, run.run_id) or {}).get("status") for run in runs}


def _summary(grid: list[RunConfig], statuses: dict[str, str | None], ran: set[str]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "cell": [run.train.cell for run in grid],
            "status": [statuses[run.run_id] or "missing" for run in grid],
            "ran": [run.run_id in ran for run in grid],
        }
    )
    by_cell = frame.groupby("cell", sort=False)
    table = pd.crosstab(frame["cell"], frame["status"])
    table = table.reindex(index=list(by_cell.groups), columns=[*STATUSES, "missing"], fill_value=0)
    table.insert(0, "already_done", by_cell["ran"].apply(lambda r: int((~r).sum())))
    table.insert(0, "ran", by_cell["ran"].sum().astype(int))
    table.insert(0, "runs", by_cell.size())
    table.loc["total"] = table.sum()
    return table


def _default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _check_arguments(
    executor: str, workers: object, scheduler: object, slurm: object, wait_workers: object
) -> None:
    if executor not in EXECUTORS:
        raise ValueError(
            f"executor={executor!r} is invalid: must be one of {', '.join(map(repr, EXECUTORS))}"
        )
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise ValueError(f"workers={workers!r} is invalid: must be an integer >= 1 or None (one per core)")
    if workers is not None and executor == "slurm":
        raise ValueError(f"workers={workers!r} is invalid with executor='slurm': SlurmConfig.cores sets them")
    if scheduler is not None and (executor != "dask" or workers is not None):
        raise ValueError(
            f"scheduler={scheduler!r} is invalid here: only with executor='dask' and "
            "workers=None (the cluster has its own workers)"
        )
    if slurm is not None and (executor != "slurm" or not isinstance(slurm, SlurmConfig)):
        raise ValueError(f"slurm={slurm!r} is invalid here: only a SlurmConfig, with executor='slurm'")
    real = isinstance(wait_workers, int | float) and not isinstance(wait_workers, bool)
    if not (real and 0 < wait_workers < math.inf):
        raise ValueError(f"wait_workers={wait_workers!r} is invalid: must be a number of seconds > 0")
    if executor == "slurm" and shutil.which("sbatch") is None:
        raise ValueError(
            "executor='slurm' is invalid on this machine: SLURM's sbatch is not on the PATH "
            "(run the sweep on a login node of the cluster)"
        )


def _check_devices(study: Study, preset: str | None, grid: list[RunConfig]) -> None:
    for device in sorted({run.train.device for run in grid}):
        try:
            resolve_device(device)
        except ValueError as err:
            raise ValueError(f"study {study.name!r} preset {preset!r}: {err}") from None


def _sweep(
    executor: InProcess | ProcessPool | DaskCluster,
    job: Job,
    runs: list[RunConfig],
    progress: _Progress,
    study_dir: Path,
    ran: set[str],
) -> tuple[list[RunConfig], bool]:
    """Map ``job`` over ``runs``; returns the runs another process held, and whether the disk
    made the sweep stop early."""
    busy = []
    for run, outcome in executor.map(job, runs):
        if outcome.action == "busy":
            busy.append(run)
            continue
        if outcome.action == "trained":
            ran.add(run.run_id)
        progress.finished(run, outcome)
        if outcome.status is not None and results.read_status(results.run_dir(study_dir, run.run_id)) is None:
            progress.say(
                f"run {run.run_id} was stored by a worker but {results.run_dir(study_dir, run.run_id)} is "
                "not visible here: the workers must share the output folder"
            )
        if outcome.action == "not_stored":
            progress.say(
                f"stopping: the disk refused run {run.run_id} ({outcome.error}); the runs stored so far "
                "are kept: make space, then run the same command again to do the rest"
            )
            return busy, True
    return busy, False


EXECUTORS = ("local", "dask", "slurm")


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
    slurm: SlurmConfig | None = None,
    wait_workers: float = 600.0,
) -> Path:
    """Run every missing run of ``study.grid(preset)`` into ``<out>/<study.name>`` and return it.

    executor 'local': ``workers`` processes (default: one per core); workers=1 runs in this
    process (with per-run progress bars).  'dask': a dask.distributed cluster at ``scheduler``,
    or a LocalCluster of ``workers`` processes if None.  'slurm': dask workers in SLURM jobs
    (``slurm``, a SlurmConfig; default SlurmConfig()).  Remote workers must share ``out``'s
    filesystem; the sweep waits up to ``wait_workers`` seconds for the first one.
    ``run_fn(run_config, progress) -> RunResult`` replaces train() (a module-level function, so
    workers can import it).  Failed runs are kept unless ``retry_failed``.

    Every run is checked (grid, devices for the local executor, a writable ``out``) before any
    starts.  Runs claimed by another sweep sharing the folder are waited for, not trained again.
    ``progress``: a bar on stderr (None: when it is a terminal); when stdout is not a terminal, a
    line per finished run.  The disk refusing a result stops the sweep (it is redone next time);
    Ctrl-C stops the workers, says what is kept, and raises KeyboardInterrupt."""
    _check_arguments(executor, workers, scheduler, slurm, wait_workers)
    grid = study.grid(preset)  # validates every run before anything starts
    if executor == "local":  # remote workers may have devices that this machine lacks
        _check_devices(study, preset, grid)
    study_dir = (Path(out) / study.name).resolve()
    try:
        check_writable(study_dir)
    except OSError as error:
        raise ValueError(
            f"out={str(out)!r} is invalid: cannot write to {study_dir} ({error.strerror})"
        ) from None
    results.write_study_info(study_dir, study.info(preset))
    before = run_statuses(study_dir, grid)
    todo = [
        run for run in grid if before[run.run_id] is None or (retry_failed and before[run.run_id] == "failed")
    ]
    workers = min(workers or _default_workers(), max(len(todo), 1))
    bar = sys.stderr.isatty() if progress is None else progress
    title = f"{study.name} [{preset}]"
    tracker = _Progress(title, len(grid), len(grid) - len(todo), bar, lines=not sys.stdout.isatty())
    ran: set[str] = set()
    start = time.perf_counter()
    try:
        if executor != "local" and todo:
            pool = start_dask(executor, workers, scheduler, slurm or SlurmConfig(), study_dir)
        else:
            pool = InProcess() if workers == 1 else ProcessPool(workers)
        job = functools.partial(
            execute_run,
            study_dir=study_dir,
            run_fn=run_fn,
            progress=bar and workers == 1,
            redo_failed=retry_failed,
        )
        try:
            if isinstance(pool, DaskCluster):
                _wait_for_workers(pool.client, wait_workers, tracker.say)
            busy, stopped = _sweep(pool, job, todo, tracker, study_dir, ran)
            if busy and not stopped:
                tracker.say(f"waiting for {len(busy)} runs that another process is training")
                _sweep(pool, functools.partial(job, wait=True), busy, tracker, study_dir, ran)
        except BaseException:
            pool.close(abort=True)
            raise
        pool.close()
    except KeyboardInterrupt:
        tracker.close()
        stored = sum(status is not None for status in run_statuses(study_dir, grid).values())
        print(
            f"\n{title}: interrupted; {stored} of {len(grid)} runs are stored in {study_dir}; "
            "run the same command again to do the rest",
            flush=True,
        )
        raise
    finally:
        tracker.close()
    statuses = run_statuses(study_dir, grid)
    elapsed = time.perf_counter() - start
    print(f"\n{title}: ran {len(ran)} runs in {elapsed:.1f} s -> {study_dir}")
    for run in grid:
        if statuses[run.run_id] == "failed":
            error = results.read_status(results.run_dir(study_dir, run.run_id)).get("error")
            print(f"failed: {_describe(run)}: {last_line(error)}")
    print(_summary(grid, statuses, ran).to_string(), flush=True)
    return study_dir
