"""SLURM through dask-jobqueue, without a cluster: the job script a SlurmConfig makes, the option
plumbing from the command line, and a sweep on a stand-in cluster whose "jobs" are local workers
that join after the sweep has started waiting for them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from dask.distributed import LocalCluster
from sweep_checks import assert_same_runs

from seqmem import cli
from seqmem.sweep import SlurmConfig, Study, executors, make_slurm_cluster, run_study

TINY = {"task": "adding", "task_params.length": 12, "cell": "rnn", "hidden_size": 8, "max_steps": 20}


def test_the_job_script_carries_every_option(tmp_path):
    config = SlurmConfig(
        cores=4,
        memory="16GB",
        walltime="1-02:00:00",
        queue="short",
        job_extra=("--account=lab", "--gres=gpu:1"),
    )
    cluster = make_slurm_cluster(config, tmp_path / "logs")
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    directives = [line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH")]
    assert {"-J seqmem", "-p short", "-n 1", "--cpus-per-task=4", "-t 1-02:00:00"} <= set(directives)
    assert {"--account=lab", "--gres=gpu:1"} <= set(directives)
    assert any(d.startswith("--mem=") for d in directives)
    assert f"-e {tmp_path / 'logs'}/" in script and f"-o {tmp_path / 'logs'}/" in script
    worker = next(line for line in script.splitlines() if "distributed.cli.dask_worker" in line)
    assert "--nworkers 4" in worker and "--nthreads 1" in worker  # one single-threaded worker per core


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"cores": 0}, "cores=0"),
        ({"jobs": -1}, "jobs=-1"),
        ({"memory": "lots"}, "memory='lots'"),
        ({"walltime": "1h"}, "walltime='1h'"),
        ({"queue": "two words"}, "queue='two words'"),
        ({"job_extra": ("account=lab",)}, "job_extra="),
    ],
)
def test_a_bad_slurm_option_is_one_line_naming_it(options, named):
    with pytest.raises(ValueError, match=rf"^{named}.* is invalid: [^\n]+$"):
        SlurmConfig(**options)


def test_the_command_line_builds_the_slurm_config(tmp_path, monkeypatch):
    asked = {}
    monkeypatch.setattr(
        cli, "run_study", lambda study, **kwargs: asked.update(kwargs) or tmp_path / study.name
    )
    study = Study(name="slurm", base=TINY, presets={"quick": {}})
    argv = [
        "--executor",
        "slurm",
        "--cores",
        "4",
        "--memory",
        "16GB",
        "--walltime",
        "02:00:00",
        "--queue",
        "short",
    ]
    argv += ["--job-extra=--account=lab", "--job-extra=--gres=gpu:1", "--jobs", "3", "--wait-workers", "3600"]
    cli.main_for_study(study, [*argv, "--out", str(tmp_path), "--no-report"])
    assert asked["executor"] == "slurm" and asked["wait_workers"] == 3600.0
    assert asked["slurm"] == SlurmConfig(
        cores=4,
        memory="16GB",
        walltime="02:00:00",
        queue="short",
        job_extra=("--account=lab", "--gres=gpu:1"),
        jobs=3,
    )


def test_slurm_options_without_the_slurm_executor_are_an_error(tmp_path, capsys):
    study = Study(name="slurm", base=TINY, presets={"quick": {}})
    assert cli.main_for_study(study, ["--cores", "4", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "seqmem: error: --cores is only used with --executor slurm\n"


class StandInSlurm(LocalCluster):
    """A LocalCluster scaled like a SLURMCluster: ``scale(jobs=n)`` starts n x cores workers."""

    def __init__(self, config: SlurmConfig) -> None:
        super().__init__(n_workers=0, threads_per_worker=1, processes=True, dashboard_address=None)
        self.config = config

    def scale(self, n: int = 0, jobs: int = 0, **kwargs) -> None:
        super().scale(n or jobs * self.config.cores)


@pytest.mark.slow
def test_a_sweep_on_slurm_jobs_matches_the_local_one(tmp_path, monkeypatch):
    sbatch = tmp_path / "bin" / "sbatch"  # the sweep checks that it runs where SLURM is
    sbatch.parent.mkdir()
    sbatch.write_text("#!/bin/sh\nexit 1\n")
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{sbatch.parent}{os.pathsep}{os.environ['PATH']}")
    built = []
    monkeypatch.setattr(
        executors, "make_slurm_cluster", lambda config, logs: built.append(logs) or StandInSlurm(config)
    )
    study = Study(name="slurm", base=TINY, axes={"seed": [0, 1, 2]})
    local = run_study(study, preset=None, out=tmp_path / "local", workers=1, progress=False)
    study_dir = run_study(
        study,
        preset=None,
        out=tmp_path / "slurm",
        executor="slurm",
        slurm=SlurmConfig(jobs=2),
        progress=False,
    )
    assert built == [study_dir / "slurm-logs"]
    assert_same_runs(study_dir, local)


def test_slurm_needs_sbatch_on_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ValueError, match="sbatch is not on the PATH"):
        run_study(Study(name="nosbatch", base=TINY), preset=None, out=tmp_path / "out", executor="slurm")
    assert not Path(tmp_path / "out").exists()
