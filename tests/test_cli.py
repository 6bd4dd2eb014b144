"""seqmem/cli.py: `seqmem tasks list|show` and `seqmem train`, driven through main(argv), and the
study-script layer: load_study_module and main_for_study (sweep, then report)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import tasks
from seqmem import cli
from seqmem.cli import load_study_module, main, main_for_study
from seqmem.config import TrainConfig
from seqmem.sweep import Study
from seqmem.train import load_model, train

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = ["--hidden-size", "8", "--steps", "3", "--eval-every", "2", "--batch-size", "4"]


def test_tasks_list_names_every_task_with_its_parameters(capsys):
    assert main(["tasks", "list"]) == 0
    out = capsys.readouterr().out
    first_words = [line.split()[0] for line in out.splitlines() if line and not line[0].isspace()]
    assert first_words == tasks.task_names()
    assert "CopyTask(delay, n_copy=10, n_symbols=8)" in out


@pytest.mark.parametrize(
    ("argv", "name", "params", "seed"),
    [
        (["copy", "--delay", "5"], "copy", {"delay": 5}, 0),
        (["copy", "--delay", "5", "--n-copy", "3", "--seed", "7"], "copy", {"delay": 5, "n_copy": 3}, 7),
        (
            ["adding", "--length", "30", "--variant", "hochreiter1997"],
            "adding",
            {"length": 30, "variant": "hochreiter1997"},
            0,
        ),
    ],
)
def test_tasks_show_prints_one_example(capsys, argv, name, params, seed):
    assert main(["tasks", "show", *argv]) == 0
    expected = tasks.make_task(name, **params).describe(torch.Generator().manual_seed(seed))
    assert capsys.readouterr().out == expected + "\n"


BAD_INPUT = [
    (["tasks", "show", "copy", "--delay", "0"], "delay=0"),
    (["tasks", "show", "copy", "--delay", "five"], "--delay='five'"),
    (["tasks", "show", "copy"], "--delay is missing: task 'copy' requires it"),
    (
        ["tasks", "show", "copy", "--delay", "5", "--length", "3"],
        "--length='3' is invalid: task 'copy' has no",
    ),
    (["tasks", "show", "nope"], "'nope'"),
    (["tasks", "show", "copy", "--delay", "5", "--seed", "x"], "--seed"),
    (
        ["train", "--task", "adding", "--length", "10", "--cell", "lstm", *TINY_TRAIN, "--hidden-size", "0"],
        "hidden_size=0",
    ),
    (
        ["train", "--task", "adding", "--length", "10", "--cell", "lstm", *TINY_TRAIN, "--lr", "fast"],
        "--lr='fast'",
    ),
    (["train", "--task", "adding", "--length", "10", "--cell", "elman", *TINY_TRAIN], "cell='elman'"),
    (["train", "--task", "adding", "--length", "10", *TINY_TRAIN], "--cell"),
    (["train", "--task", "adding", "--cell", "lstm", *TINY_TRAIN], "--length is missing"),
    (["train", "--task", "adding", "--length", "10", "--cell", "lstm"], "max_steps=None"),
    (
        ["train", "--task", "copy", "--length", "10", "--cell", "lstm", *TINY_TRAIN],
        "--length='10' is invalid: task 'copy' has no such field (its fields: --delay, --n-copy, --n-sym",
    ),
    (["train", "--task", "adding", "--length", "10", "--cell", "lstm", *TINY_TRAIN, "--bogus"], "--bogus"),
    ([], "required"),
]


@pytest.mark.parametrize(("argv", "needle"), BAD_INPUT, ids=[" ".join(a) or "<none>" for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_on_stderr_and_exit_status_2(capsys, argv, needle):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("seqmem: error: ") and captured.err.count("\n") == 1
    assert needle in captured.err
    assert captured.out == ""


def test_train_prints_the_outcome_and_writes_history_and_checkpoint(capsys, tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--task", "adding", "--length", "10", "--cell", "gru", *TINY_TRAIN]
    assert main([*argv, "--seed", "1", "--grad-clip", "none", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    config = TrainConfig(
        task="adding",
        task_params={"length": 10},
        cell="gru",
        hidden_size=8,
        max_steps=3,
        eval_every=2,
        batch_size=4,
        seed=1,
        grad_clip=None,
    )
    reference = train(config, progress=False)  # the same run, straight through the library
    assert f"{reference.status} after 3 steps" in printed
    assert f"loss_ratio   {reference.final_metrics['loss_ratio']:.6g}" in printed
    history = pd.read_csv(out / "history.csv")
    pd.testing.assert_frame_equal(
        history.drop(columns="elapsed_s"),
        reference.history.drop(columns="elapsed_s"),
        check_exact=False,
        rtol=1e-12,
    )
    model, loaded_config = load_model(out / "checkpoint.pt")
    assert loaded_config == config
    assert all(torch.equal(model.state_dict()[k], reference.state_dict[k]) for k in reference.state_dict)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "history.csv"]


def test_help_lists_config_fields_and_task_parameters(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(
        flag in out
        for flag in ["--hidden-size", "--max-steps", "--steps", "--grad-clip", "--delay", "--length"]
    )


def test_a_new_subcommand_is_one_entry_in_commands(monkeypatch, capsys):
    def add_hello(subparsers):
        parser = subparsers.add_parser("hello")
        parser.add_argument("--name", default="world")
        parser.set_defaults(run=lambda args: print(f"hello {args.name}") or 0)

    monkeypatch.setitem(cli.COMMANDS, "hello", add_hello)
    assert main(["hello", "--name", "seqmem"]) == 0
    assert capsys.readouterr().out == "hello seqmem\n"


def test_python_dash_m_runs_the_cli():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "seqmem.cli", "tasks", "show", "copy", "--delay", "2"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("copy(delay=2")


# -- study scripts --------------------------------------------------------------------------------

TINY_STUDY = {
    "task": "adding",
    "task_params.length": 12,
    "cell": "rnn",
    "hidden_size": 8,
    "batch_size": 16,
    "max_steps": 4,
    "eval_every": 2,
    "eval_batch_size": 16,
}


def test_load_study_module_returns_the_scripts_study(tmp_path):
    assert load_study_module(ROOT / "studies" / "copy_length.py").name == "copy_length"
    script = tmp_path / "nostudy.py"
    script.write_text("STUDY = 3\n")
    with pytest.raises(ValueError, match="STUDY=int is invalid"):
        load_study_module(script)
    with pytest.raises(ValueError, match="^path=.* is invalid"):
        load_study_module(tmp_path / "missing.py")


def test_main_for_study_runs_then_renders_the_report(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(
        cli, "render_report", lambda study_dir: calls.append(study_dir) or study_dir / "report" / "index.html"
    )
    study = Study(name="cli", base=TINY_STUDY, axes={"seed": [0]}, presets={"quick": {}, "full": {}})
    assert main_for_study(study, ["--out", str(tmp_path), "--workers", "1"]) == 0
    assert calls == [tmp_path.resolve() / "cli"]
    assert f"report: {tmp_path.resolve() / 'cli' / 'report' / 'index.html'}" in capsys.readouterr().out
    assert json.loads((tmp_path / "cli" / "study.json").read_text())["preset"] == "quick"
    assert main_for_study(study, ["--out", str(tmp_path), "--workers", "1", "--no-report"]) == 0
    assert len(calls) == 1
    with pytest.raises(SystemExit):
        main_for_study(study, ["--out", str(tmp_path), "--workers", "0"])


def test_main_for_study_exits_1_when_a_run_failed(tmp_path, capsys):
    study = Study(name="failing", base={**TINY_STUDY, "device": "cuda:99"}, presets={"quick": {}})
    assert main_for_study(study, ["--out", str(tmp_path), "--workers", "1", "--no-report"]) == 1
    assert "failed" in capsys.readouterr().out


def test_seqmem_run_runs_a_study_script(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "render_report", lambda study_dir: study_dir / "report" / "index.html")
    script = tmp_path / "tiny.py"
    script.write_text(
        "from seqmem.sweep import Study\n"
        f"STUDY = Study(name='tiny', base={TINY_STUDY!r}, presets={{'quick': {{}}}})\n"
    )
    assert main(["run", str(script), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    assert (tmp_path / "out" / "tiny" / "study.json").is_file()
