"""seqmem/cli.py: `seqmem tasks list|show`, `seqmem train` and `seqmem report`, driven through
main(argv), and the study-script layer: load_study_module and main_for_study (sweep, then report);
help texts, one-line errors and warnings, exit statuses."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

import tasks
from seqmem import cli
from seqmem.cli import load_study_module, main, main_for_study
from seqmem.config import RunConfig, TrainConfig
from seqmem.results import load_study
from seqmem.sweep import Study
from seqmem.train import load_model, train

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = ["--hidden-size", "8", "--steps", "3", "--eval-every", "2", "--batch-size", "4"]
TRAIN_LSTM = ["train", "--task", "adding", "--length", "10", "--cell", "lstm", *TINY_TRAIN]


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
    (["tasks", "show", "copy", "--delay", "5", "--seed", "-1"], "--seed=-1 is invalid"),
    (
        ["tasks", "show", "copy", "--delay", "1000000000000"],
        "batch_size=1 is invalid: a batch of copy(delay=1000",
    ),
    ([*TRAIN_LSTM, "--hidden-size", "1000000"], "hidden_size=1000000 is invalid: the weights of a LSTMCell"),
    (
        [*TRAIN_LSTM, "--eval-batch-size", "10000000000"],
        "eval_batch_size=10000000000 is invalid: a forward pass",
    ),
    # nothing is printed: the folder is refused before training
    ([*TRAIN_LSTM, "--out", "/proc/seqmem/out"], "--out='/proc/seqmem/out' is invalid: cannot write there"),
    (["run"], "STUDY is missing: give a study script"),
    (["report", "/nonexistent/results"], "RESULTS_DIR='/nonexistent/results' is invalid"),
]


@pytest.mark.parametrize(("argv", "needle"), BAD_INPUT, ids=[" ".join(a) or "<none>" for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_on_stderr_and_exit_status_2(capsys, argv, needle):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("seqmem: error: ") and captured.err.count("\n") == 1
    assert needle in captured.err
    assert captured.out == ""


def test_train_out_stores_a_one_run_study_that_load_study_and_report_read(capsys, tmp_path):
    out = tmp_path / "not" / "yet" / "run"
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
    run_id = RunConfig(config).run_id
    frames = load_study(out)
    assert frames.problems.empty and list(frames.runs.run_id) == [run_id]
    assert frames.info["name"] == "run" and [e["run_id"] for e in frames.info["grid"]] == [run_id]
    assert frames.runs.status[0] == reference.status and frames.runs.steps[0] == 3
    pd.testing.assert_frame_equal(
        frames.metrics[list(reference.history.columns)].drop(columns="elapsed_s"),
        reference.history.drop(columns="elapsed_s"),
    )
    model, loaded_config = load_model(out / "runs" / run_id / "checkpoint.pt")
    assert loaded_config == config
    assert all(torch.equal(model.state_dict()[k], reference.state_dict[k]) for k in reference.state_dict)
    assert main(["report", str(out)]) == 0
    assert (out / "report" / "index.html").is_file()


HELP = [
    (
        ["train", "--help"],
        [
            "--hidden-size INT an integer (default: 128)",
            "--max-steps INT, --steps INT budget in optimiser steps; a budget is required: give --max-steps",
            "--stopping NAME one of eval, hochreiter1997 (default: eval)",
            "--grad-clip FLOAT max global gradient norm; a number or none (default: 1.0)",
            "--cell NAME one of rnn, relu_rnn,",
            "--delay INT copy: an integer (required)",
            "--n-copy INT copy: an integer (default: 10); selective_copy: an integer (default: 16)",
            "--variant NAME adding: one of arjovsky2016, hochreiter1997 (default: arjovsky2016); long_lag:",
            "--out DIR store the run in DIR as a one-run study",
        ],
    ),
    (["tasks", "show", "--help"], ["--seed INT seed of the example, >= 0 (default: 0)", "--length INT"]),
    (
        ["report", "--help"],
        ["writes RESULTS_DIR/report/index.html", "PNG and SVG", "exit status 1 when runs"],
    ),
    (["run", "--help"], ["`seqmem run STUDY --help` lists them with the study's presets"]),
    (
        ["run", str(ROOT / "studies" / "copy_length.py"), "--help"],
        [
            "--preset {quick,full} which grid to run (quick: ",
            "--executor {local,dask,slurm}",
            "--wait-workers SECONDS",
            "--retry-failed redo the runs stored as failed",
            "--walltime [D-]HH:MM:SS time limit per job (default: 01:00:00)",
            "--job-extra OPTION one more #SBATCH option",
        ],
    ),
]


@pytest.mark.parametrize(("argv", "shown"), HELP, ids=[" ".join(argv[:2]) for argv, _ in HELP])
def test_help_lists_choices_types_and_defaults(capsys, argv, shown):
    assert main(argv) == 0
    text = " ".join(capsys.readouterr().out.split())  # as one line: argparse wraps at the terminal width
    missing = [line for line in shown if line not in text]
    assert not missing, text


def test_a_studys_help_gives_each_preset_with_its_size(tmp_path, capsys):
    script = tmp_path / "sized.py"
    script.write_text(
        "from seqmem.sweep import Study\n"
        f"STUDY = Study(name='sized', base={TINY_STUDY!r}, axes={{'seed': [0, 1, 2]}},\n"
        "              presets={'quick': {'axes': {'seed': [0]}}, 'full': {}})\n"
    )
    assert main(["run", str(script), "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--preset {quick,full} which grid to run (quick: 1 runs; full: 3 runs; default: quick)" in text


def test_seqmem_run_without_a_study_names_no_internal_variable(capsys):
    assert main(["run"]) == 2
    assert "study_args" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("source", "line", "raised"),
    [
        ("from seqmem.sweep import Study\n\nSTUDY = 1 / 0\n", 3, "ZeroDivisionError: division by zero"),
        ("from seqmem.sweep import Study\nSTUDY = Study(\n", 2, "SyntaxError: "),
        (
            "import seqmem\nSTUDY = seqmem.sweep.Study(name='bad', base={'cell': 'elman'})\n",
            2,
            "ValueError: ",
        ),
    ],
)
def test_a_study_script_that_raises_is_one_line_naming_file_and_line(tmp_path, capsys, source, line, raised):
    script = tmp_path / "broken.py"
    script.write_text(source)
    assert main(["run", str(script)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"seqmem: error: {script}:{line}: the study script raised {raised}")
        and err.count("\n") == 1
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
        cli,
        "write_report",
        lambda frames, info, out: calls.append((sorted(frames.runs.run_id), out)) or out / "i.html",
    )
    study = Study(name="cli", base=TINY_STUDY, axes={"seed": [0]}, presets={"quick": {}, "full": {}})
    assert main_for_study(study, ["--out", str(tmp_path), "--workers", "1"]) == 0
    study_dir = tmp_path.resolve() / "cli"
    assert calls == [([study.grid("quick")[0].run_id], study_dir / "report")]
    assert f"report: {study_dir / 'report' / 'i.html'}" in capsys.readouterr().out
    assert json.loads((tmp_path / "cli" / "study.json").read_text())["preset"] == "quick"
    assert main_for_study(study, ["--out", str(tmp_path), "--workers", "1", "--no-report"]) == 0
    assert len(calls) == 1
    assert main_for_study(study, ["--out", str(tmp_path), "--workers", "0"]) == 2
    assert capsys.readouterr().err == (
        "seqmem: error: workers=0 is invalid: must be an integer >= 1 or None (one per core)\n"
    )


def test_main_for_study_exits_1_when_a_run_failed_and_says_why(tmp_path, capsys):
    # 10^6 hidden units: the run is refused inside the worker (its weights cannot fit) and stored failed
    study = Study(name="failing", base={**TINY_STUDY, "hidden_size": 1_000_000}, presets={"quick": {}})
    assert main_for_study(study, ["--out", str(tmp_path), "--workers", "1", "--no-report"]) == 1
    (run,) = study.grid("quick")
    reason = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("failed: "))
    assert reason.startswith(
        f"failed: {run.run_id} rnn adding(length=12, variant=arjovsky2016): ValueError: "
    )
    assert "hidden_size=1000000 is invalid" in reason


def test_the_report_lists_failed_runs_with_their_error(tmp_path, capsys):
    study = Study(name="failing", base={**TINY_STUDY, "hidden_size": 1_000_000}, presets={"quick": {}})
    assert main_for_study(study, ["--out", str(tmp_path), "--workers", "1"]) == 1
    page = (tmp_path / "failing" / "report" / "index.html").read_text()
    table = page[page.index("<h2>Failed and unreadable runs</h2>") :]
    (run,) = study.grid("quick")
    assert run.run_id in table and "ValueError: hidden_size=1000000 is invalid" in table


def test_a_device_this_machine_lacks_is_a_one_line_error_before_any_run(tmp_path, capsys):
    study = Study(name="gpu", base={**TINY_STUDY, "device": "cuda:99"}, presets={"quick": {}})
    assert main_for_study(study, ["--out", str(tmp_path), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "seqmem: error: study 'gpu' preset 'quick': device='cuda:99' is invalid: no such device"
    )
    assert not (tmp_path / "gpu").exists()


def test_seqmem_run_runs_a_study_script(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "write_report", lambda frames, info, out: out / "index.html")
    script = tmp_path / "tiny.py"
    script.write_text(
        "from seqmem.sweep import Study\n"
        f"STUDY = Study(name='tiny', base={TINY_STUDY!r}, presets={{'quick': {{}}}})\n"
    )
    assert main(["run", str(script), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    assert (tmp_path / "out" / "tiny" / "study.json").is_file()


def test_seqmem_run_into_a_log_file_writes_a_line_per_finished_run(tmp_path):
    script = tmp_path / "tiny.py"
    script.write_text(
        "from seqmem.sweep import Study\n"
        f"STUDY = Study(name='tiny', base={TINY_STUDY!r}, axes={{'seed': [0, 1]}},\n"
        "              presets={'quick': {}})\n"
    )
    log = tmp_path / "log"
    with open(log, "w") as stdout:  # `seqmem run ... > log`
        done = subprocess.run(
            [sys.executable, "-m", "seqmem.cli", "run", str(script), "--out", str(tmp_path), "--workers", "1"]
            + ["--no-report"],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=300,
        )
    assert done.returncode == 0, done.stderr
    lines = log.read_text().splitlines()
    study = load_study_module(script)
    for n, run in enumerate(study.grid("quick"), start=1):
        assert any(line.startswith(f"[{n}/2] {run.run_id} rnn adding(length=12") for line in lines), lines


# -- seqmem report ----------------------------------------------------------------------------------


@pytest.fixture
def swept(tmp_path) -> Path:
    """A tiny study's results folder, three runs."""
    study = Study(name="swept", base=TINY_STUDY, axes={"seed": [0, 1, 2]}, presets={"quick": {}})
    assert main_for_study(study, ["--out", str(tmp_path), "--workers", "1", "--no-report"]) == 0
    return tmp_path / "swept"


def test_report_names_unreadable_runs_in_one_line_warnings_the_page_and_the_exit_status(swept, capsys):
    victim = sorted(p.parent.name for p in swept.glob("runs/*/status.json"))[0]
    (swept / "runs" / victim / "status.json").write_text("{}")
    capsys.readouterr()
    assert main(["report", str(swept)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        f"seqmem: warning: run {victim}: unreadable status.json (must be a JSON object with a 'status' of "
        f"solved, budget_exhausted, diverged, failed) at {swept / 'runs' / victim / 'status.json'}; skipped"
    )
    assert all(line.startswith("seqmem: ") for line in err), err  # no source lines of warnings.warn
    page = (swept / "report" / "index.html").read_text()
    assert "Failed and unreadable runs" in page and victim in page


def test_report_on_a_truncated_study_json_names_it_and_renders_the_runs(swept, monkeypatch, capsys):
    rendered = []
    monkeypatch.setattr(
        cli, "write_report", lambda frames, info, out: rendered.append(frames) or out / "i.html"
    )
    study_json = swept / "study.json"
    study_json.write_text(study_json.read_text()[:100])
    assert main(["report", str(swept)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"seqmem: warning: study swept: unreadable file (ValueError: {study_json} is not valid"
    )
    assert len(rendered[0].runs) == 3


def test_report_of_a_study_without_runs_is_an_error(tmp_path, capsys):
    (tmp_path / "study.json").write_text('{"name": "x"}')
    assert main(["report", str(tmp_path)]) == 2
    assert "holds no runs to report" in capsys.readouterr().err


def test_report_on_a_full_disk_is_one_line_naming_the_file(swept, monkeypatch, capsys):
    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")  # as a failing write(): no file name

    monkeypatch.setattr(Figure, "savefig", disk_full)
    assert main(["report", str(swept)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"seqmem: error: [Errno 28] No space left on device: '{swept / 'report'}/") and (
        err.count("\n") == 1
    )
