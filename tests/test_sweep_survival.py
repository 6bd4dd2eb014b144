"""Sweeps under what researchers do to them on shared machines: two sweeps into one folder, a dask
worker lost after runs finished, a scheduler without workers, Ctrl-C.

Every run function here logs each training it starts (run id and process id) to a file, so
"trained exactly once" is counted, not inferred; results are compared, file by file, with an
uninterrupted sweep of the same study in this process."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import ModuleType

import psutil
import pytest
from dask.distributed import LocalCluster
from sweep_checks import KILLABLE_STUDY, assert_same_runs, stamps

from seqmem.sweep import Study, run_study, runner

REPO = Path(__file__).absolute().parents[1]

# A study module that workers import by name (its folder goes on PYTHONPATH): the killable study
# and run functions that log every training they start.
SHARED = (
    KILLABLE_STUDY
    + '''
import os
import sys
from pathlib import Path

from seqmem.sweep import run_study, train_run

LOG = Path(os.environ.get("SEQMEM_TEST_LOG", "trainings.log"))


def logged_run(config, progress):
    with open(LOG, "a") as log:
        log.write(f"{config.run_id} {os.getpid()}\\n")
    return train_run(config, progress)


def dying_run(config, progress):
    """logged_run, except that one worker dies as it starts its second run: the result of its
    first lives on it, so dask recomputes that one."""
    marker = LOG.with_suffix(".killed")
    started = LOG.read_text().splitlines() if LOG.exists() else []
    if any(line.endswith(f" {os.getpid()}") for line in started) and not marker.exists():
        marker.touch()
        os._exit(1)
    return logged_run(config, progress)


if __name__ == "__main__":
    run_study(STUDY, out=sys.argv[1], workers=1, progress=False, run_fn=logged_run)
'''
)


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> ModuleType:
    """shared.py, imported as ``shared`` (as dask's workers import it: by name, from PYTHONPATH)."""
    path = tmp_path_factory.mktemp("shared") / "shared.py"
    path.write_text(SHARED)
    spec = importlib.util.spec_from_file_location("shared", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["shared"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["shared"]


@pytest.fixture
def env(shared, tmp_path, monkeypatch) -> dict[str, str]:
    """Environment in which processes (dask's workers included) import shared.py and log to
    tmp_path/trainings.log."""
    folder = str(Path(shared.__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([folder, str(REPO)]))
    monkeypatch.syspath_prepend(folder)  # spawned processes start from this process's sys.path
    monkeypatch.setenv("SEQMEM_TEST_LOG", str(tmp_path / "trainings.log"))
    monkeypatch.setattr(shared, "LOG", tmp_path / "trainings.log")
    return dict(os.environ)


@pytest.fixture(scope="module")
def reference(shared, tmp_path_factory) -> Path:
    """The shared study, swept uninterrupted in this process."""
    return run_study(shared.STUDY, out=tmp_path_factory.mktemp("reference"), workers=1, progress=False)


def trainings(env: dict[str, str]) -> Counter:
    """run id -> how many times a training of it started."""
    return Counter(line.split()[0] for line in Path(env["SEQMEM_TEST_LOG"]).read_text().splitlines())


@pytest.mark.slow
def test_two_concurrent_sweeps_into_one_folder_train_each_run_once(env, reference, tmp_path):
    sweeps = [
        subprocess.Popen(
            [sys.executable, "-m", "shared", str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [sweep.communicate(timeout=300)[0] for sweep in sweeps]
    assert [sweep.returncode for sweep in sweeps] == [0, 0], outputs
    counts = trainings(env)
    assert sorted(counts) == sorted(p.name for p in (reference / "runs").iterdir())
    assert set(counts.values()) == {1}, counts
    assert_same_runs(tmp_path / "killable", reference)


@pytest.mark.slow
def test_dask_matches_the_local_executor_and_a_lost_worker_retrains_no_finished_run(
    shared, env, reference, tmp_path
):
    study_dir = run_study(
        shared.STUDY, out=tmp_path, executor="dask", workers=2, progress=False, run_fn=shared.dying_run
    )
    assert Path(env["SEQMEM_TEST_LOG"]).with_suffix(".killed").exists()  # a worker did die
    assert set(trainings(env).values()) == {1}, trainings(env)
    assert_same_runs(study_dir, reference)


def test_a_scheduler_without_workers_says_so_and_gives_up(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "HEARTBEAT_S", 0.3)
    study = Study(
        name="alone", base={"task": "adding", "task_params.length": 8, "cell": "rnn", "max_steps": 2}
    )
    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
        address, start = cluster.scheduler_address, time.monotonic()
        with pytest.raises(
            TimeoutError, match=rf"^no dask worker joined the scheduler at {address} within 1.5 s"
        ):
            run_study(
                study, None, tmp_path, executor="dask", scheduler=address, wait_workers=1.5, progress=False
            )
        assert time.monotonic() - start < 30
    printed = capsys.readouterr().out.splitlines()
    waiting = [
        line for line in printed if line.startswith(f"waiting for dask workers at {address}: none after")
    ]
    assert waiting, printed
    assert not list(tmp_path.glob("alone/runs/*"))


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_and_says_what_was_kept_in_one_line(shared, env, tmp_path):
    # Ctrl-C in a terminal signals the whole foreground process group: the sweep and its workers.
    sweep = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seqmem.cli",
            "run",
            shared.__file__,
            "--out",
            str(tmp_path),
            "--workers",
            "2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("killable/runs/*/status.json")):
        assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()[0]
        time.sleep(0.02)
    processes = psutil.Process(sweep.pid).children(recursive=True)
    os.killpg(sweep.pid, signal.SIGINT)
    output = sweep.communicate(timeout=60)[0]
    _, alive = psutil.wait_procs(processes, timeout=15)
    assert sweep.returncode == 130 and not alive, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert "Traceback" not in output and "leaked" not in output, output
    kept = len(stamps(tmp_path / "killable"))
    assert lines[-1] == (
        f"killable [quick]: interrupted; {kept} of 6 runs are stored in {tmp_path / 'killable'}; "
        "run the same command again to do the rest"
    )
    assert all(line.startswith("[") for line in lines[:-1]), output  # the runs that finished
