"""seqmem.sweep: grid expansion, the run ids of the studies, executors, resume after SIGKILL, isolation,
damaged runs redone, a full disk, claims held elsewhere, the grid check, progress lines.

The reference for every stored result is an independent one: a direct train() call, or an
uninterrupted in-process sweep of the same study, compared file by file (timings excluded)."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from sweep_checks import KILLABLE_STUDY, assert_same_runs, flip_a_byte, stamps, truncate

from seqmem import results
from seqmem.cli import load_study_module
from seqmem.config import RunConfig, TrainConfig
from seqmem.sweep import JoinedStudy, Study, execute_run, run_study, runner, train_run
from seqmem.train import train

REPO = Path(__file__).absolute().parents[1]
TINY = {
    "task": "adding",
    "task_params.length": 12,
    "cell": "rnn",
    "hidden_size": 8,
    "batch_size": 16,
    "max_steps": 30,
    "eval_every": 10,
    "eval_batch_size": 32,
}

# The study the SIGKILL and dask tests run, as a script.
STUDY_SCRIPT = f"""{KILLABLE_STUDY}
from seqmem.cli import main_for_study

if __name__ == "__main__":
    raise SystemExit(main_for_study(STUDY))
"""


def flaky_run(config: RunConfig, progress: bool):
    """train_run, except that every seed-1 run raises (module level: workers import it)."""
    if config.train.seed == 1:
        raise RuntimeError("boom from seed 1")
    return train_run(config, progress)


@pytest.fixture(scope="module")
def study_script(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scripts") / "killable.py"
    path.write_text(STUDY_SCRIPT)
    return path


@pytest.fixture(scope="module")
def reference(study_script, tmp_path_factory) -> Path:
    """The killable study, swept uninterrupted in this process."""
    out = tmp_path_factory.mktemp("reference")
    return run_study(load_study_module(study_script), out=out, workers=1, progress=False)


# -- run identity ---------------------------------------------------------------------------------

# The run ids seqmem 0.1.0 gave the main job's runs (studies/gradient_decay.py --preset quick):
# the names of results folders users already have, which a rerun must find to resume.
GRADIENT_DECAY_QUICK_IDS = [
    "9b6304316ea5",
    "2fcfcced8fc9",
    "4a3c2d5cc90d",
    "f4565d9a4ce9",
    "a6c4eeb64a71",
    "51e616b45ca9",
    "3f7609e813a6",
    "f7957890f766",
    "1d8e5768be48",
    "c0675bf83b8b",
    "a2c7c91611e1",
    "5b2e04b65ce5",
]


def as_in_0_1_0(run: RunConfig) -> RunConfig:
    """The main job's run with 0.1.0's budget: the copy runs went from 1000 steps to 400 since
    (so that the main job, the expRNN added, stays within 3 minutes), which made them new runs."""
    steps = 1000 if run.train.task == "copy" else run.train.max_steps
    return RunConfig(dataclasses.replace(run.train, max_steps=steps), run.probe)


def test_the_main_jobs_run_ids_are_those_of_0_1_0():
    study = load_study_module(REPO / "studies" / "gradient_decay.py")
    # the cells of 0.1.0 keep their runs (and results folders); exprnn's runs came later
    runs = [run for run in study.grid("quick") if run.train.cell != "exprnn"]
    assert [as_in_0_1_0(run).run_id for run in runs] == GRADIENT_DECAY_QUICK_IDS
    unchanged = [run.run_id in GRADIENT_DECAY_QUICK_IDS for run in runs]
    assert unchanged == [run.train.task == "adding" for run in runs]


def test_literature_keys_are_recorded_and_change_no_run_id(tmp_path):
    plain = Study(name="lit", base=TINY, axes={"seed": [0, 1]})
    cited = Study(name="lit", base=TINY, axes={"seed": [0, 1]}, literature=["hochreiter1997"])
    assert cited.literature == ("hochreiter1997",)
    assert [r.run_id for r in cited.grid(None)] == [r.run_id for r in plain.grid(None)]
    assert (plain.info(None)["literature"], cited.info(None)["literature"]) == ([], ["hochreiter1997"])
    for key in ("Hochreiter 1997", "", 1997):
        with pytest.raises(ValueError, match=r"^literature=.* is invalid: [^\n]+$"):
            Study(name="lit", base=TINY, literature=(key,))


@pytest.mark.parametrize(
    ("script", "keys"),
    [
        ("reproduce_hochreiter1997", ["hochreiter1997"]),
        ("reproduce_arjovsky2016", ["arjovsky2016"]),
        ("gradient_decay", []),
    ],
)
def test_studies_name_the_papers_they_reproduce(script, keys):
    study = load_study_module(REPO / "studies" / f"{script}.py")
    assert study.info("quick")["literature"] == keys


def test_sweeping_does_not_load_the_report():
    code = "import json, sys, seqmem.sweep; print(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert "seqmem.train" in loaded and not {"seqmem.report", "seqmem.cli"} & loaded


# -- the grid -------------------------------------------------------------------------------------


def test_grid_is_the_product_of_the_axes_with_presets_and_overrides():
    study = Study(
        name="grid",
        base=TINY,
        axes={"cell": ["rnn", "lstm", "gru"], "seed": [0, 1]},
        presets={"quick": {"axes": {"seed": [7]}, "base": {"max_steps": 5}}, "full": {}},
        overrides={"cell": {"lstm": {"hidden_size": 4}}},
    )
    full = study.grid("full")
    assert [(r.train.cell, r.train.seed) for r in full] == [
        (c, s) for c in ("rnn", "lstm", "gru") for s in (0, 1)
    ]
    assert {r.train.cell: r.train.hidden_size for r in full} == {"rnn": 8, "lstm": 4, "gru": 8}
    assert all(r.train.max_steps == 30 and r.train.task_params["length"] == 12 for r in full)
    quick = study.grid("quick")
    assert [(r.train.cell, r.train.seed, r.train.max_steps) for r in quick] == [
        ("rnn", 7, 5),
        ("lstm", 7, 5),
        ("gru", 7, 5),
    ]
    assert len({r.run_id for r in full + quick}) == len(full) + len(quick)


@pytest.mark.parametrize(
    "task_values",
    [
        [("adding", {"length": 15}), ("copy", {"delay": 9})],
        [{"task": "adding", "task_params": {"length": 15}}, {"task": "copy", "task_params": {"delay": 9}}],
    ],
)
def test_task_axis_sets_task_and_its_params(task_values):
    study = Study(
        name="tasks",
        base={**TINY, "task_params.length": 99},
        axes={"task": task_values, "seed": [0, 1]},
        overrides={"task": {"copy": {"max_steps": 3}}},
    )
    runs = study.grid(None)
    expected = [
        TrainConfig(**{**{k: v for k, v in TINY.items() if "." not in k}, "seed": seed, **extra})
        for extra in (
            {"task": "adding", "task_params": {"length": 15}},
            {"task": "copy", "task_params": {"delay": 9}, "max_steps": 3},
        )
        for seed in (0, 1)
    ]
    assert [r.train for r in runs] == expected


def test_exclude_drops_exactly_the_combinations_named():
    study = Study(
        name="exclude",
        base=TINY,
        axes={"cell": ["rnn", "lstm"], "task": [("adding", {"length": 12}), ("copy", {"delay": 5})]},
        exclude=[{"cell": "lstm", "task": "copy"}],
        presets={"quick": {"exclude": [{"cell": "rnn"}]}, "full": {}},
    )
    assert [(r.train.cell, r.train.task) for r in study.grid("full")] == [
        ("rnn", "adding"),
        ("rnn", "copy"),
        ("lstm", "adding"),
    ]
    # a preset's exclusions add to the study's
    assert [(r.train.cell, r.train.task) for r in study.grid("quick")] == [("lstm", "adding")]
    assert study.info("quick")["exclude"] == [{"cell": "lstm", "task": "copy"}, {"cell": "rnn"}]


def test_a_joined_study_is_its_parts_grids_per_preset():
    # a hidden size per cell that also differs per task: one grid per task, joined
    def part(task, sizes, presets):
        overrides = {"cell": {cell: {"hidden_size": size} for cell, size in sizes.items()}}
        return Study(
            name=f"part_{task[0]}",
            base=TINY,
            axes={"cell": list(sizes), "task": [task]},
            presets={preset: {"overrides": overrides} for preset in presets},
        )

    copy = part(("copy", {"delay": 5}), {"rnn": 8, "urnn": 6}, ["quick", "full"])
    adding = part(("adding", {"length": 12}), {"rnn": 4, "urnn": 10}, ["full"])
    joined = JoinedStudy(name="joined", base={}, presets={"quick": {}, "full": {}}, parts=(copy, adding))
    sizes = [(r.train.task, r.train.cell, r.train.hidden_size) for r in joined.grid("full")]
    assert sizes == [("copy", "rnn", 8), ("copy", "urnn", 6), ("adding", "rnn", 4), ("adding", "urnn", 10)]
    assert [r.run_id for r in joined.grid("full")] == [
        r.run_id for p in (copy, adding) for r in p.grid("full")
    ]
    assert [r.train.task for r in joined.grid("quick")] == ["copy", "copy"]  # adding has no quick
    with pytest.raises(ValueError, match="preset='paper' is invalid"):
        joined.grid("paper")
    with pytest.raises(ValueError, match="two parts share a run"):
        JoinedStudy(name="twice", base={}, presets={"full": {}}, parts=(copy, copy))


@pytest.mark.parametrize(
    ("study_kwargs", "named"),
    [
        ({"axes": {"hiden_size": [8]}}, "hiden_size"),
        ({"axes": {"hidden_size": [8, -1]}}, "hidden_size"),
        ({"axes": {"seed": []}}, "seed"),
        ({"axes": {"task_params.length": [12, 0]}}, "length"),
        ({"axes": {"task": [("adding", {"delay": 3})]}}, "delay"),
        ({"axes": {"task": [42]}}, "task"),
        ({"axes": {"seed": [0, 0]}}, "same config"),
        ({"base": {"optimiser": "adam"}}, "optimiser"),
        ({"presets": {"quick": {"axis": {}}}}, "axis"),
        ({"presets": {"quick": {"base": {"lr": -1.0}}}}, "lr"),
        ({"axes": {"cell": ["rnn"]}, "overrides": {"cell": {"lstm": {"hidden_size": 4}}}}, "lstm"),
        (
            {
                "axes": {"cell": ["rnn"], "hidden_size": [4]},
                "overrides": {"cell": {"rnn": {"hidden_size": 4}}},
            },
            "hidden_size",
        ),
        ({"name": "no/slashes"}, "name"),
        ({"exclude": [{"cel": "rnn"}]}, "cel"),
        ({"axes": {"cell": ["rnn", "gru"]}, "exclude": [{"cell": "lstm"}]}, "lstm"),
        ({"axes": {"cell": ["rnn"]}, "exclude": [{"cell": "rnn"}]}, "leaves no run"),
        ({"exclude": {"cell": "rnn"}}, "exclude"),
        ({"presets": {"quick": {"exclude": ["rnn"]}}}, "exclude entry"),
    ],
)
def test_bad_study_raises_one_line_value_error(study_kwargs, named):
    kwargs = {"name": "bad", "base": TINY, **study_kwargs}
    with pytest.raises(ValueError, match=named) as error:
        Study(**kwargs)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"preset": "fulll"}, "preset"),
        ({"executor": "pbs"}, "executor"),
        ({"executor": "slurm"}, "sbatch"),
        ({"executor": "dask", "wait_workers": 0}, "wait_workers"),
        ({"executor": "dask", "slurm": "big"}, "slurm"),
        ({"workers": 0}, "workers"),
        ({"scheduler": "tcp://x:8786"}, "scheduler"),
    ],
)
def test_bad_run_arguments_fail_before_any_run(tmp_path, kwargs, named):
    study = Study(name="args", base=TINY, presets={"quick": {}})
    with pytest.raises(ValueError, match=named):
        run_study(study, out=tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


# -- isolation, resume ----------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_failing_and_diverging_runs_do_not_stop_the_sweep(tmp_path, workers, capsys):
    # relu RNN + SGD at lr 1e4 without clipping blows up within a few steps
    study = Study(
        name="isolation",
        base={**TINY, "cell": "relu_rnn", "optimizer": "sgd", "grad_clip": None},
        axes={"lr": [1e-3, 1e4], "seed": [0, 1, 2]},
    )
    study_dir = run_study(study, preset=None, out=tmp_path, workers=workers, progress=False, run_fn=flaky_run)
    runs = results.load_study(study_dir).runs.set_index("run_id")
    for run in study.grid(None):
        row = runs.loc[run.run_id]
        if run.train.seed == 1:
            assert row.status == "failed"
            assert "Traceback" in row.error and "RuntimeError: boom from seed 1" in row.error
        else:
            assert row.status == train(run.train, progress=False).status
    assert set(runs.status) == {"failed", "diverged", "budget_exhausted"}
    printed = capsys.readouterr().out
    table = [line.split() for line in printed.splitlines()]
    header = next(line for line in table if line[:1] == ["status"])
    counts = dict(zip(header[1:], map(int, table[-1][1:]), strict=True))
    assert table[-1][0] == "total"
    assert counts == {
        "runs": 6,
        "ran": 6,
        "already_done": 0,
        "solved": 0,
        "failed": 2,
        "budget_exhausted": (runs.status == "budget_exhausted").sum(),
        "diverged": (runs.status == "diverged").sum(),
        "missing": 0,
    }
    # the reason of every failed run is on the console, not only inside its status.json
    reasons = [line for line in printed.splitlines() if line.startswith("failed: ")]
    failed_ids = {run.run_id for run in study.grid(None) if run.train.seed == 1}
    assert len(reasons) == 2 and all(line.endswith(": RuntimeError: boom from seed 1") for line in reasons)
    assert {line.split()[1] for line in reasons} == failed_ids


def test_rerun_redoes_only_incomplete_runs(tmp_path):
    study = Study(name="resume", base=TINY, axes={"seed": [0, 1, 2]})
    study_dir = run_study(study, preset=None, out=tmp_path, workers=1, progress=False)
    first = stamps(study_dir)
    victim = results.run_dir(study_dir, study.grid(None)[1].run_id)
    metrics = pd.read_parquet(victim / "metrics.parquet")
    # what a kill between two file writes leaves behind: no status.json, a torn parquet file
    (victim / "status.json").unlink()
    (victim / "metrics.parquet").write_bytes(b"PAR1 torn")
    run_study(study, preset=None, out=tmp_path, workers=1, progress=False)
    second = stamps(study_dir)
    assert {k: v for k, v in second.items() if k != victim.name} == {
        k: v for k, v in first.items() if k != victim.name
    }
    assert second[victim.name] != first[victim.name]
    pd.testing.assert_frame_equal(
        pd.read_parquet(victim / "metrics.parquet").drop(columns="elapsed_s"),
        metrics.drop(columns="elapsed_s"),
    )
    run_study(study, preset=None, out=tmp_path, workers=1, progress=False)
    assert stamps(study_dir) == second


def test_retry_failed_redoes_failed_runs_only(tmp_path):
    study = Study(name="retry", base=TINY, axes={"seed": [0, 1]})
    study_dir = run_study(study, preset=None, out=tmp_path, workers=1, progress=False, run_fn=flaky_run)
    ok_id, failed_id = (run.run_id for run in study.grid(None))
    before = stamps(study_dir)
    run_study(study, preset=None, out=tmp_path, workers=1, progress=False)
    assert stamps(study_dir) == before  # failed is a finished result unless asked
    run_study(study, preset=None, out=tmp_path, workers=1, progress=False, retry_failed=True)
    after = stamps(study_dir)
    assert after[ok_id] == before[ok_id] and after[failed_id] != before[failed_id]
    assert results.read_status(results.run_dir(study_dir, failed_id))["status"] == "budget_exhausted"


def test_sigkill_part_way_then_rerun_completes_each_run_once(study_script, reference, tmp_path):
    study = load_study_module(study_script)
    run_ids = sorted(run.run_id for run in study.grid("quick"))
    study_dir = tmp_path / study.name
    log = tmp_path / "sweep.log"
    with open(log, "w") as stderr:
        sweep = subprocess.Popen(
            [sys.executable, str(study_script), "--out", str(tmp_path), "--workers", "2", "--no-report"],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=stderr,
            stderr=stderr,
        )
    deadline = time.monotonic() + 120
    while not list(study_dir.glob("runs/*/status.json")):
        assert sweep.poll() is None, f"sweep ended before the kill:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no run finished in time:\n{log.read_text()}"
        time.sleep(0.01)
    workers = psutil.Process(sweep.pid).children(recursive=True)
    os.kill(sweep.pid, signal.SIGKILL)
    sweep.wait()
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, f"processes outlived the killed sweep: {alive}"

    done = stamps(study_dir)
    assert 0 < len(done) < len(run_ids), "the kill did not land part-way"
    torn = results.run_dir(study_dir, next(i for i in run_ids if i not in done))
    torn.mkdir(parents=True, exist_ok=True)
    for name in ("metrics.parquet", "checkpoint.pt"):
        (torn / name).write_bytes(b"half written")

    run_study(study, out=tmp_path, workers=1, progress=False)
    assert {k: v for k, v in stamps(study_dir).items() if k in done} == done  # not redone
    assert sorted(results.load_study(study_dir).runs.run_id) == run_ids
    assert_same_runs(study_dir, reference)
    assert not list(study_dir.rglob("*.tmp"))


# -- what survives what: damaged runs, a full disk, claims, devices, progress ------------------------


def _frames(study_dir: Path) -> dict[str, pd.DataFrame]:
    """run id -> its metrics without timings: what a redone run must reproduce."""
    return {
        p.parent.name: pd.read_parquet(p).drop(columns="elapsed_s")
        for p in study_dir.glob("runs/*/metrics.parquet")
    }


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("config.json", truncate),
        ("metrics.parquet", truncate),
        ("checkpoint.pt", flip_a_byte),
        ("status.json", lambda path: path.write_text("{}")),
        ("status.json", lambda path: path.write_text("[]")),
    ],
    ids=["config-truncated", "metrics-truncated", "checkpoint-flipped", "status-{}", "status-[]"],
)
def test_a_damaged_run_is_redone_and_the_others_are_not(tmp_path, name, damage):
    study = Study(name="damaged", base=TINY, axes={"seed": [0, 1, 2]})
    study_dir = run_study(study, preset=None, out=tmp_path, workers=1, progress=False)
    first, frames = stamps(study_dir), _frames(study_dir)
    victim = study.grid(None)[1].run_id
    damage(results.run_dir(study_dir, victim) / name)
    run_study(study, preset=None, out=tmp_path, workers=1, progress=False)
    second = stamps(study_dir)
    assert {k: v for k, v in second.items() if k != victim} == {k: v for k, v in first.items() if k != victim}
    assert second[victim] != first[victim]
    assert all(results.stored_status(study_dir, run_id) is not None for run_id in second)
    for run_id, frame in _frames(study_dir).items():
        pd.testing.assert_frame_equal(frame, frames[run_id])


def test_a_full_disk_stops_the_sweep_and_nothing_is_lost_once_space_returns(tmp_path, monkeypatch, capsys):
    study = Study(name="full", base=TINY, axes={"seed": [0, 1, 2]})
    reference = run_study(study, preset=None, out=tmp_path / "reference", workers=1, progress=False)
    first, second, third = (run.run_id for run in study.grid(None))
    trained = []

    def counting_run(config: RunConfig, progress: bool):
        trained.append(config.run_id)
        return train_run(config, progress)

    real_save = results.save_checkpoint

    def disk_fills_after_one_run(path, state_dict, config):
        if len(trained) > 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(path, state_dict, config)

    monkeypatch.setattr(results, "save_checkpoint", disk_fills_after_one_run)
    study_dir = run_study(study, preset=None, out=tmp_path, workers=1, progress=False, run_fn=counting_run)
    printed = capsys.readouterr().out
    assert trained == [first, second]  # the third run is not trained for a disk that cannot take it
    assert f"stopping: the disk refused run {second}" in printed and "No space left on device" in printed
    assert run_study_statuses(study_dir, study) == {first: "budget_exhausted", second: None, third: None}
    assert not results.run_dir(study_dir, second).exists()  # what it had written is given back

    monkeypatch.setattr(results, "save_checkpoint", real_save)
    run_study(
        study, preset=None, out=tmp_path, workers=1, progress=False, run_fn=counting_run
    )  # no retry flag
    assert trained == [first, second, second, third]
    assert_same_runs(study_dir, reference)


def run_study_statuses(study_dir: Path, study: Study) -> dict[str, str | None]:
    return {
        run.run_id: (results.stored_status(study_dir, run.run_id) or {}).get("status")
        for run in study.grid(None)
    }


def test_a_device_this_machine_lacks_fails_the_grid_check(tmp_path):
    study = Study(name="device", base={**TINY, "device": "cuda:99"}, axes={"seed": [0, 1]})
    with pytest.raises(
        ValueError, match=r"^study 'device' preset None: device='cuda:99' is invalid: no such"
    ):
        run_study(study, preset=None, out=tmp_path / "out", workers=1, progress=False)
    assert not (tmp_path / "out").exists()


def test_an_unwritable_out_fails_before_any_run(tmp_path):
    (tmp_path / "file").write_text("in the way")
    study = Study(name="unwritable", base=TINY)
    with pytest.raises(ValueError, match=r"^out='.*file' is invalid: cannot write to "):
        run_study(study, preset=None, out=tmp_path / "file", workers=1, progress=False)


def test_executing_a_stored_run_again_costs_nothing(tmp_path):
    run = Study(name="again", base=TINY).grid(None)[0]
    calls = []

    def counting_run(config: RunConfig, progress: bool):
        calls.append(config.run_id)
        return train_run(config, progress)

    first = execute_run(run, tmp_path, counting_run)
    stamp = stamps(tmp_path)
    again = execute_run(run, tmp_path, counting_run)
    assert (first.action, again.action) == ("trained", "found")
    assert first.status == again.status == "budget_exhausted" and first.elapsed_s == again.elapsed_s
    assert calls == [run.run_id] and stamps(tmp_path) == stamp


HOLD_CLAIM = """
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_run_claimed_elsewhere_is_waited_for_and_taken_over_when_its_holder_dies(tmp_path, capsys):
    study = Study(name="claimed", base=TINY, axes={"seed": [0, 1, 2]})
    held = study.grid(None)[0].run_id
    lock = tmp_path / study.name / "locks" / f"{held}.lock"
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_CLAIM, str(lock), "3"], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    study_dir = run_study(study, preset=None, out=tmp_path, workers=1, progress=False)
    holder.wait()
    holder.stdout.close()
    lines = capsys.readouterr().out.splitlines()
    waiting = lines.index("waiting for 1 runs that another process is training")
    assert held not in "".join(lines[:waiting]) and held in lines[waiting + 1]  # trained last
    assert all(status is not None for status in run_study_statuses(study_dir, study).values())


def test_without_a_terminal_each_finished_run_is_a_line_and_a_heartbeat_beats(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "HEARTBEAT_S", 0.05)
    study = Study(name="lines", base=TINY, axes={"seed": [0, 1]})
    run_study(study, preset=None, out=tmp_path, workers=1, progress=False, run_fn=slow_run)
    lines = capsys.readouterr().out.splitlines()
    for n, run in enumerate(study.grid(None), start=1):
        line = next(line for line in lines if line.startswith(f"[{n}/2] "))
        assert line.startswith(
            f"[{n}/2] {run.run_id} rnn adding(length=12, variant=arjovsky2016) budget_exhausted "
        )
        assert line.endswith(" s")
    assert any(line.startswith("lines [None]: ") and line.endswith("still running") for line in lines)


def slow_run(config: RunConfig, progress: bool):
    time.sleep(0.3)
    return train_run(config, progress)
