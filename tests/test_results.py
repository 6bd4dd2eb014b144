"""seqmem.results: the run folder layout, loading into tidy frames, damage reporting, verifying
stored runs against their digests, and run claims.

Runs are fabricated with known contents, so every loaded value has an independent reference:
the data that was written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sweep_checks import flip_a_byte, truncate

from seqmem import results
from seqmem.config import RunConfig
from seqmem.io import file_digest, load_checkpoint
from seqmem.sweep import Study

STUDY = Study(
    name="store",
    base={"task": "adding", "task_params.length": 12, "cell": "lstm", "hidden_size": 4, "max_steps": 20},
    axes={"seed": [0, 1, 2]},
)


def fabricated_result(run: RunConfig, probes: pd.DataFrame | None = None) -> dict:
    """What write_run stores, with numbers that are simple functions of the seed."""
    seed = run.train.seed
    steps = np.arange(0, 30, 10)
    history = pd.DataFrame(
        {
            "step": steps,
            "sequences_seen": steps * 32,
            "loss": 1.0 / (steps + seed + 1),
            "elapsed_s": steps * 0.1,
            "solved": steps > 15,
        }
    )
    if probes is None:
        probes = pd.DataFrame(
            {
                "step": [0, 0, 20],
                "sequences_seen": [0, 0, 640],
                "phase": ["init", "init", "final"],
                "quantity": "grad_norm",
                "t": [3, 2, 3],
                "lag": [0, 1, 0],
                "stat": "mean",
                "value": [1.0, 0.5 + seed, np.nan],
            }
        )
    outcome = {
        "status": "solved" if seed == 0 else "diverged",
        "steps": 20,
        "sequences_seen": 640,
        "diverged_step": None if seed == 0 else 17,
        "final_metrics": {"loss": np.float64(0.25 + seed), "loss_ratio": float("nan") if seed else 0.5},
        "elapsed_s": 1.5,
    }
    state_dict = {"readout.weight": torch.full((1, 4), float(seed))}
    return {"history": history, "probes": probes, "state_dict": state_dict, "outcome": outcome}


@pytest.fixture
def study_dir(tmp_path):
    """A study folder with every run of STUDY written."""
    path = tmp_path / STUDY.name
    results.write_study_info(path, STUDY.info(None))
    for run in STUDY.grid(None):
        results.write_run(path, run, **fabricated_result(run))
    return path


def test_written_runs_load_back_as_tidy_frames(study_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frames = results.load_study(study_dir)
    grid = STUDY.grid(None)
    assert list(frames.runs.run_id) == [run.run_id for run in grid]
    assert frames.info["grid"][0]["run_id"] == grid[0].run_id
    for run in grid:
        expected = fabricated_result(run)
        outcome = expected["outcome"]
        row = frames.runs.set_index("run_id").loc[run.run_id]
        assert (row.status, row.solved, row.steps, row.sequences_seen) == (
            outcome["status"],
            outcome["status"] == "solved",
            outcome["steps"],
            outcome["sequences_seen"],
        )
        diverged = outcome["diverged_step"]
        assert row.diverged_step == diverged if diverged is not None else pd.isna(row.diverged_step)
        assert (row.final_loss, row.elapsed_s) == (outcome["final_metrics"]["loss"], outcome["elapsed_s"])
        assert (row.cell, row.seed, row.length, row.variant) == ("lstm", run.train.seed, 12, "arjovsky2016")
        for frame, name in ((frames.metrics, "history"), (frames.analysis, "probes")):
            written = expected[name]
            mine = frame[frame.run_id == run.run_id].reset_index(drop=True)
            pd.testing.assert_frame_equal(mine[list(written.columns)], written)
            assert (mine.seed == run.train.seed).all() and (mine.length == 12).all()
        state, config = load_checkpoint(results.run_dir(study_dir, run.run_id) / "checkpoint.pt")
        assert torch.equal(state["readout.weight"], expected["state_dict"]["readout.weight"])
        assert config == run.train.to_dict()


def test_failed_run_is_loaded_with_its_traceback(tmp_path):
    single = Study(name="single", base=STUDY.base)
    results.write_study_info(tmp_path, single.info(None))
    run = single.grid(None)[0]
    results.write_failed_run(tmp_path, run, "Traceback ...\nRuntimeError: boom", 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frames = results.load_study(tmp_path)
    row = frames.runs.iloc[0]
    assert (row.run_id, row.status, bool(row.solved)) == (run.run_id, "failed", False)
    assert row.error.endswith("RuntimeError: boom")
    assert frames.metrics.empty and frames.analysis.empty


@pytest.mark.parametrize(
    ("name", "damage", "run_kept"),
    [
        ("metrics.parquet", "garbage", True),
        ("metrics.parquet", "missing", True),
        ("analysis.parquet", "garbage", True),
        ("config.json", "garbage", False),
        ("status.json", "garbage", False),
        ("status.json", "missing", False),
    ],
)
def test_damaged_file_is_named_and_the_rest_loads(study_dir, name, damage, run_kept):
    victim, *others = [run.run_id for run in STUDY.grid(None)]
    path = results.run_dir(study_dir, victim) / name
    if damage == "missing":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # torn in the middle
    named = path if name != "status.json" or damage != "missing" else path.parent
    with pytest.warns(UserWarning) as caught:
        frames = results.load_study(study_dir)
    assert [str(w.message) for w in caught if victim in str(w.message) and str(named) in str(w.message)]
    assert all(victim in str(w.message) for w in caught)
    assert list(frames.runs.run_id) == ([victim] if run_kept else []) + others
    for frame in (frames.metrics, frames.analysis):
        assert set(others) <= set(frame.run_id)
    damaged_frame = {"metrics.parquet": frames.metrics, "analysis.parquet": frames.analysis}.get(name)
    if damaged_frame is not None:
        assert victim not in set(damaged_frame.run_id)


def test_without_study_json_every_run_folder_loads(study_dir):
    (study_dir / "study.json").unlink()
    with pytest.warns(UserWarning, match="study.json"):
        frames = results.load_study(study_dir)
    assert sorted(frames.runs.run_id) == sorted(run.run_id for run in STUDY.grid(None))


def test_interrupted_write_leaves_an_incomplete_run(study_dir):
    run = STUDY.grid(None)[0]
    folder = results.run_dir(study_dir, run.run_id)
    (folder / "stale.txt").write_text("from an earlier attempt")
    unwritable = pd.DataFrame({"value": [1.0, "not a float"]})  # pyarrow refuses mixed types
    with pytest.raises(Exception, match="value"):
        results.write_run(study_dir, run, **fabricated_result(run, probes=unwritable))
    assert results.read_status(folder) is None and (folder / "metrics.parquet").exists()
    assert not (folder / "stale.txt").exists()
    with pytest.warns(UserWarning, match=f"run {run.run_id}: run not complete"):
        frames = results.load_study(study_dir)
    assert run.run_id not in set(frames.runs.run_id)


def test_flatten_config_spreads_task_params():
    flat = results.flatten_config({"task": "t", "seed": 0, "task_params": {"length": 3, "seed": 5}})
    assert flat == {"task": "t", "seed": 0, "length": 3, "task_params.seed": 5}


def test_empty_and_missing_study_folders(tmp_path):
    with pytest.raises(ValueError, match="path"):
        results.load_study(tmp_path / "nothing")
    with pytest.warns(UserWarning, match="study.json"):
        frames = results.load_study(tmp_path)
    for frame in (frames.runs, frames.metrics, frames.analysis):
        assert list(frame.columns) == ["run_id"] and frame.empty


def test_the_store_does_not_load_training():
    # results depends only on config and io: loading it must not pull in the model, training,
    # analysis, sweep, report or CLI modules.
    code = "import json, sys, seqmem.results; print(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).absolute().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    loaded = {name for name in json.loads(out.stdout) if name.startswith("seqmem.")}
    assert {"seqmem.results", "seqmem.io", "seqmem.config"} <= loaded
    above = ("model", "train", "analysis", "sweep", "report", "cli")
    assert not {name for name in loaded if name.split(".")[1] in above}


# -- what counts as stored: complete, intact files -------------------------------------------------


def test_status_json_lists_the_digest_of_every_file(study_dir):
    for run in STUDY.grid(None):
        folder = results.run_dir(study_dir, run.run_id)
        listed = results.read_status(folder)["files"]
        names = sorted(p.name for p in folder.iterdir() if p.name != "status.json")
        assert sorted(listed) == names
        assert all(listed[name] == file_digest(folder / name) for name in names)
        assert results.stored_status(study_dir, run.run_id)["status"] in results.STATUSES


@pytest.mark.parametrize(
    ("name", "damage", "problem"),
    [
        ("config.json", truncate, "bytes, not the"),
        ("metrics.parquet", truncate, "bytes, not the"),
        ("analysis.parquet", lambda path: path.unlink(), "missing file"),
        ("checkpoint.pt", flip_a_byte, "SHA-256"),
    ],
)
def test_a_damaged_file_makes_the_run_one_to_redo(study_dir, name, damage, problem):
    victim, *others = STUDY.grid(None)
    damage(results.run_dir(study_dir, victim.run_id) / name)
    status = results.read_status(results.run_dir(study_dir, victim.run_id))
    assert list(results.run_damage(results.run_dir(study_dir, victim.run_id), status)) == [name]
    assert problem in results.run_damage(results.run_dir(study_dir, victim.run_id), status)[name]
    assert results.stored_status(study_dir, victim.run_id) is None
    assert all(results.stored_status(study_dir, run.run_id) is not None for run in others)


@pytest.mark.parametrize("content", ["{}", "[]", '{"status": "great"}', '{"status": "solved"'])
def test_a_status_json_without_a_known_status_is_no_status(study_dir, content):
    victim = STUDY.grid(None)[0]
    path = results.run_dir(study_dir, victim.run_id) / "status.json"
    path.write_text(content)
    assert results.read_status(path.parent) is None
    with pytest.warns(UserWarning, match=f"run {victim.run_id}: unreadable status.json") as caught:
        frames = results.load_study(study_dir)
    assert any(str(path) in str(w.message) for w in caught)
    assert victim.run_id not in set(frames.runs.run_id)
    assert frames.problems.to_dict("records") == [
        {"run_id": victim.run_id, "path": str(path), "problem": frames.problems.problem[0]}
    ]


def test_runs_of_0_1_0_without_digests_are_checked_by_reading_them(study_dir):
    victim, intact, _ = STUDY.grid(None)
    for run in (victim, intact):
        path = results.run_dir(study_dir, run.run_id) / "status.json"
        status = json.loads(path.read_text())
        del status["files"]  # as seqmem 0.1.0 wrote it
        path.write_text(json.dumps(status))
    assert results.stored_status(study_dir, intact.run_id) is not None
    truncate(results.run_dir(study_dir, victim.run_id) / "metrics.parquet")
    assert results.stored_status(study_dir, victim.run_id) is None


def test_load_study_lists_what_it_could_not_read(study_dir):
    victim = STUDY.grid(None)[1]
    truncate(results.run_dir(study_dir, victim.run_id) / "metrics.parquet")
    with pytest.warns(UserWarning):
        frames = results.load_study(study_dir)
    assert list(frames.problems.columns) == ["run_id", "path", "problem"]
    assert frames.problems.run_id.tolist() == [victim.run_id]
    assert frames.problems.path.tolist() == [
        str(results.run_dir(study_dir, victim.run_id) / "metrics.parquet")
    ]


@pytest.mark.parametrize(
    ("content", "problem"), [('{"name": "store", "grid": [', "not valid JSON"), ('{"name": "x"}', "no grid")]
)
def test_a_broken_study_json_is_named_and_the_run_folders_load(study_dir, content, problem):
    (study_dir / "study.json").write_text(content)
    with pytest.warns(UserWarning, match=f"study store: .*{problem}.* at {study_dir / 'study.json'}"):
        frames = results.load_study(study_dir)
    assert sorted(frames.runs.run_id) == sorted(run.run_id for run in STUDY.grid(None))
    assert frames.problems.run_id.isna().all() and len(frames.problems) == 1
    assert frames.info["name"] == ("x" if "grid" not in content else "store")


# -- claims ---------------------------------------------------------------------------------------


def test_a_claimed_run_cannot_be_claimed_again_until_released(tmp_path):
    with results.claim_run(tmp_path, "abc", wait=False) as first:
        with results.claim_run(tmp_path, "abc", wait=False) as second:
            assert (first, second) == (True, False)
        with results.claim_run(tmp_path, "other", wait=False) as other:
            assert other
    with results.claim_run(tmp_path, "abc", wait=False) as again:
        assert again


HOLD_LOCK = """
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(120)
"""


def test_the_claim_of_a_killed_process_is_taken_over(tmp_path):
    lock = tmp_path / "locks" / "abc.lock"
    lock.parent.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with results.claim_run(tmp_path, "abc", wait=False) as claimed:
            assert not claimed  # a live holder keeps it
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
    with results.claim_run(tmp_path, "abc", wait=False) as claimed:
        assert claimed
