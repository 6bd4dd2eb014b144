"""Where a sweep's runs execute: in this process, in local worker processes, or on a dask cluster --
a scheduler's, a LocalCluster, or SLURM jobs through dask-jobqueue (``SlurmConfig``).

Each executor maps a job (RunConfig -> RunOutcome) over runs and yields (run, outcome) as runs
finish; a run whose worker died comes back 'lost', to be redone.  ``close(abort=True)``
stops the workers at once (Ctrl-C); ``close()`` lets the running runs finish first.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import re
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from seqmem.config import RunConfig
from seqmem.sweep.runs import Job, RunOutcome
from tasks.base import check_int

__all__ = ["InProcess", "ProcessPool", "DaskCluster", "SlurmConfig", "make_slurm_cluster", "start_dask"]

Finished = Iterator[tuple[RunConfig, RunOutcome]]


def _outcome_of(future: Any) -> RunOutcome:
    try:
        return future.result()
    except Exception as err:  # the worker died (killed, out of memory, lost node)
        return RunOutcome("lost", error=f"{type(err).__name__}: {err}")


class InProcess:
    """Runs one after another in this process (per-run progress bars possible)."""

    def map(self, job: Job, runs: list[RunConfig]) -> Finished:
        for run in runs:
            yield run, job(run)

    def close(self, abort: bool = False) -> None:
        pass


class ProcessPool:
    """``workers`` local processes.  They leave Ctrl-C to the sweep and exit as soon as the
    sweep closes their stop pipe or dies (SIGKILL included), so no orphan goes on training a
    run that the rerun redoes."""

    def __init__(self, workers: int) -> None:
        if "forkserver" in multiprocessing.get_all_start_methods():
            # Workers fork from a server that has imported torch and seqmem once, instead of paying
            # seconds of imports each (spawn); never plain fork, which is unsafe with threads.
            # torch._dynamo is what torch.optim imports lazily on its first use: seconds more per
            # worker.
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["seqmem.sweep", "torch._dynamo"])
        else:
            context = multiprocessing.get_context("spawn")
        # Only this process holds the writing end: its close, or this process's death, is the
        # workers' end-of-file.
        self.stop_reader, self.stop_writer = context.Pipe(duplex=False)
        self.pool = ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(self.stop_reader,)
        )

    def map(self, job: Job, runs: list[RunConfig]) -> Finished:
        futures = {self.pool.submit(job, run): run for run in runs}
        try:
            for future in as_completed(futures):
                yield futures[future], _outcome_of(future)
        finally:  # the sweep stopped early: start no more runs
            for future in futures:
                future.cancel()

    def close(self, abort: bool = False) -> None:
        """Wait for the running runs (``abort``: stop the workers at once), then end the pool."""
        if abort:
            self.stop_writer.close()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.stop_writer.close()
        self.stop_reader.close()


def _init_worker(stop: multiprocessing.connection.Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the sweep, which stops us
    # tqdm's default lock is a multiprocessing semaphore, which a worker stopped by os._exit
    # could not unregister (a "leaked semaphore" warning at exit); a worker draws no bars.
    tqdm.set_lock(threading.RLock())  # on tqdm's base class: every tqdm class shares it
    threading.Thread(target=_exit_when_closed, args=(stop,), daemon=True).start()


def _exit_when_closed(stop: multiprocessing.connection.Connection) -> None:
    multiprocessing.connection.wait([stop])
    os._exit(1)


class DaskCluster:
    """A dask.distributed client; ``cluster`` (if any) is the one this sweep started.  Results
    stay referenced until the sweep ends, so dask recomputes those of a lost worker: that costs
    nothing, because ``execute_run`` finds them stored."""

    def __init__(self, client: Any, cluster: Any = None) -> None:
        self.client, self.cluster, self.maps = client, cluster, 0
        self.futures: list[Any] = []

    def map(self, job: Job, runs: list[RunConfig]) -> Finished:
        from dask.distributed import as_completed as dask_completed

        self.maps += 1  # a later map of the same runs (waiting for claims) is new work
        keys = [f"seqmem-run-{run.run_id}-{self.maps}" for run in runs]
        futures = self.client.map(job, runs, key=keys)
        self.futures.extend(futures)
        by_key = {future.key: run for future, run in zip(futures, runs, strict=True)}
        try:
            for future in dask_completed(futures):
                yield by_key[future.key], _outcome_of(future)
        finally:
            self.client.cancel([future for future in futures if not future.done()])

    def close(self, abort: bool = False) -> None:
        self.futures.clear()
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


@dataclass(frozen=True)
class SlurmConfig:
    """The SLURM jobs that carry the sweep's dask workers (through dask-jobqueue's SLURMCluster).

    cores      CPU cores per job: one worker process with one torch thread per core
    memory     memory per job, e.g. '16GB'
    walltime   time limit per job, '[D-]HH:MM:SS'; a job that reaches it loses its runs in
               progress, which a later job (or rerun) redoes
    queue      the partition (None: the cluster's default)
    job_extra  more #SBATCH directives, e.g. ('--account=lab', '--gres=gpu:1')
    jobs       how many jobs to submit
    """

    cores: int = 1
    memory: str = "4GB"
    walltime: str = "01:00:00"
    queue: str | None = None
    job_extra: tuple[str, ...] = ()
    jobs: int = 1

    def __post_init__(self) -> None:
        check_int("cores", self.cores, 1)
        check_int("jobs", self.jobs, 1)
        if not isinstance(self.memory, str) or not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", self.memory):
            raise ValueError(f"memory={self.memory!r} is invalid: must be an amount like '16GB' or '4GiB'")
        if not isinstance(self.walltime, str) or not re.fullmatch(r"(\d+-)?\d+:\d\d:\d\d", self.walltime):
            raise ValueError(
                f"walltime={self.walltime!r} is invalid: must be '[D-]HH:MM:SS', e.g. '04:00:00'"
            )
        if self.queue is not None and not (isinstance(self.queue, str) and re.fullmatch(r"\S+", self.queue)):
            raise ValueError(f"queue={self.queue!r} is invalid: must be a partition name or None")
        extra = (self.job_extra,) if isinstance(self.job_extra, str) else tuple(self.job_extra)
        if not all(isinstance(option, str) and option.startswith("-") for option in extra):
            raise ValueError(
                f"job_extra={self.job_extra!r} is invalid: must be sbatch options, e.g. ('--account=lab',)"
            )
        object.__setattr__(self, "job_extra", extra)


def make_slurm_cluster(config: SlurmConfig, log_directory: Path) -> Any:
    """A dask_jobqueue.SLURMCluster for ``config`` (not yet scaled); its jobs write their logs to
    ``log_directory``.  Needs the optional extra: ``pip install 'seqmem[slurm]'``."""
    try:
        from dask_jobqueue import SLURMCluster  # optional: only SLURM users install it
    except ImportError:
        raise ValueError(
            "executor='slurm' is unavailable: it needs dask-jobqueue (pip install 'seqmem[slurm]')"
        ) from None
    return SLURMCluster(
        job_name="seqmem",
        cores=config.cores,
        processes=config.cores,  # one single-threaded worker per core, as every run wants
        memory=config.memory,
        walltime=config.walltime,
        queue=config.queue,
        job_extra_directives=list(config.job_extra),
        log_directory=str(log_directory),
    )


def start_dask(
    executor: str, workers: int, scheduler: str | None, slurm: SlurmConfig, study_dir: Path
) -> DaskCluster:
    from dask.distributed import Client, LocalCluster

    if executor == "slurm":
        cluster = make_slurm_cluster(slurm, study_dir / "slurm-logs")
        cluster.scale(jobs=slurm.jobs)
    elif scheduler is None:
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
    else:
        cluster = None
    return DaskCluster(Client(cluster if cluster is not None else scheduler), cluster)
