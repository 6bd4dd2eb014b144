"""One run of a sweep: claimed, trained and stored by ``execute_run`` -- or found stored already,
which makes running it twice (a dask recomputation, a second sweep on the same folder) free."""

from __future__ import annotations

import errno
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from seqmem import results
from seqmem.analysis.probe import make_probe
from seqmem.config import RunConfig
from seqmem.train import RunResult, train

__all__ = ["RunFn", "Job", "RunOutcome", "DISK_ERRNOS", "train_run", "execute_run", "last_line"]


def train_run(config: RunConfig, progress: bool = False) -> RunResult:
    """The default run function: train() with the study's probe as a callback."""
    callbacks = [make_probe(config.probe)] if config.probe is not None else []
    return train(config.train, callbacks=callbacks, progress=progress)


RunFn = Callable[[RunConfig, bool], RunResult]
Job = Callable[[RunConfig], "RunOutcome"]  # what an executor maps over runs: execute_run, partly applied

# Errors of the disk, not of the run: the run is not recorded as failed but stays to do, and the
# sweep stops starting runs it could not store.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO})


def _is_disk_error(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in DISK_ERRNOS


def last_line(text: str | None) -> str | None:
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else None


@dataclass(frozen=True)
class RunOutcome:
    """What one ``execute_run`` call did with its run.

    action     'trained' (ran now -- finished or failed -- and stored), 'found' (already stored
               intact: nothing redone), 'busy' (another process holds the run's claim),
               'not_stored' (the disk refused the result) or 'lost' (its worker died); the last
               two stay to do
    status     the stored status (solved, budget_exhausted, diverged, failed); None if not stored
    elapsed_s  the run's training seconds, as stored
    error      the last line of the run's error: why it failed, or why it was not stored
    """

    action: str
    status: str | None = None
    elapsed_s: float | None = None
    error: str | None = None


def execute_run(
    run: RunConfig,
    study_dir: Path,
    run_fn: RunFn = train_run,
    progress: bool = False,
    *,
    wait: bool = False,
    redo_failed: bool = False,
) -> RunOutcome:
    """Claim one grid point (``seqmem.results.claim_run``; ``wait``: until its holder is done),
    then train and store it -- unless it is stored intact already, so that running it again (a
    dask recomputation after a lost worker, a second sweep) costs nothing.  A stored 'failed'
    run is redone only with ``redo_failed``.  An exception inside the run is stored as status
    'failed'; an error of the disk (full, read-only) is not: the run stays to do."""
    with results.claim_run(study_dir, run.run_id, wait=wait) as claimed:
        if not claimed:
            return RunOutcome("busy")
        stored = results.stored_status(study_dir, run.run_id)
        if stored is not None and not (redo_failed and stored["status"] == "failed"):
            return RunOutcome(
                "found", stored["status"], stored.get("elapsed_s"), last_line(stored.get("error"))
            )
        threads = torch.get_num_threads()
        # One thread per run: workers on a machine don't oversubscribe it, and every executor
        # computes the same floating-point sums in the same order.
        torch.set_num_threads(1)
        start = time.perf_counter()
        try:
            return _train_and_store(run, study_dir, run_fn, progress, start)
        except OSError as error:
            if not _is_disk_error(error):
                raise
            results.discard_run(study_dir, run.run_id)  # give back what it took; it is redone
            elapsed = time.perf_counter() - start
            return RunOutcome("not_stored", None, elapsed, f"{type(error).__name__}: {error}")
        finally:
            torch.set_num_threads(threads)


def _train_and_store(
    run: RunConfig, study_dir: Path, run_fn: RunFn, progress: bool, start: float
) -> RunOutcome:
    try:
        result = run_fn(run, progress)
        outcome = result.summary()
        results.write_run(
            study_dir,
            run,
            history=result.history,
            probes=result.probes,
            state_dict=result.state_dict,
            outcome=outcome,
        )
        return RunOutcome("trained", outcome["status"], outcome["elapsed_s"])
    except Exception as error:
        if _is_disk_error(error):
            raise
        trace, elapsed = traceback.format_exc(), time.perf_counter() - start
        results.write_failed_run(study_dir, run, trace, elapsed)
        return RunOutcome("trained", "failed", elapsed, last_line(trace))
