"""seqmem/cli.py: `seqmem tasks list|show` and `seqmem train`, driven through main(argv)."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import tasks
from seqmem import cli
from seqmem.cli import main
from seqmem.train import TrainConfig, load_checkpoint, train

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
    (["tasks", "show", "copy"], "--delay is required"),
    (["tasks", "show", "copy", "--delay", "5", "--length", "3"], "--length"),
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
    (["train", "--task", "adding", "--cell", "lstm", *TINY_TRAIN], "--length is required"),
    (["train", "--task", "adding", "--length", "10", "--cell", "lstm"], "max_steps=None"),
    (
        ["train", "--task", "copy", "--length", "10", "--cell", "lstm", *TINY_TRAIN],
        "--length is invalid for task 'copy'",
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
    model, loaded_config = load_checkpoint(out / "checkpoint.pt")
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
