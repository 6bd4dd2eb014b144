"""Studies: a grid of training runs, executed resumably in this process, on local processes, on a
dask cluster or on SLURM jobs.

A ``Study`` names base TrainConfig fields, ``axes`` whose product is the grid, ``presets`` that
override both (``quick`` for a laptop, ``full`` for the real thing), per-value ``overrides`` (say,
hidden size per cell), an optional ``ProbeConfig`` and the papers it reproduces (``literature``).
Every grid point is a ``seqmem.config.RunConfig`` whose ``run_id`` is a hash of its canonical
JSON, so a run's folder name *is* its configuration:

    study.grid("quick")  ->  [RunConfig, ...]           validated before anything runs
    run_study(study)     ->  <out>/<name>/runs/<run_id>/...   (see seqmem.results)

What survives what.  A run is stored only once its files are complete and intact (their digests
are in its status.json), and a rerun skips exactly those runs, so a sweep killed at any moment
(Ctrl-C, SIGKILL, a lost node, a SLURM walltime) is finished by running it again.  Every run is
claimed with an OS-level lock before it is trained, so sweeps sharing one folder split the work,
and a run already stored is never trained again (a dask recomputation costs nothing).  An
exception inside a run is stored as status 'failed' with its traceback and the sweep goes on; a
full or read-only disk is not a failure: the sweep stops and the run stays to do.  Each run is
limited to one torch thread in every executor, which is what makes their results identical.

Keys, used alike in ``base``, ``axes``, ``overrides`` and presets: a TrainConfig field, or
``task_params.<name>`` for one task parameter.  The ``task`` axis also takes ``(name, params)``
pairs or ``{"task": name, "task_params": params}`` dicts, which replace the task parameters whole
(``task_params.<name>`` axes then apply on top).  Override values are keyed by axis value (for the
``task`` axis: by task name).

Modules: ``grid`` (Study), ``runs`` (one run: claim, train, store), ``executors`` (where runs
execute, SLURM included), ``runner`` (``run_study``: checks, progress, summary).
"""

from seqmem.sweep.executors import SlurmConfig, make_slurm_cluster
from seqmem.sweep.grid import JoinedStudy, Study
from seqmem.sweep.runner import run_statuses, run_study
from seqmem.sweep.runs import RunOutcome, execute_run, train_run

__all__ = [
    "Study",
    "JoinedStudy",
    "SlurmConfig",
    "RunOutcome",
    "run_study",
    "run_statuses",
    "train_run",
    "execute_run",
    "make_slurm_cluster",
]
