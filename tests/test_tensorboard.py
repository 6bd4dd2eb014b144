"""seqmem/tensorboard.py: the TensorBoard callback, read back with TensorBoard's own reader, and the
`--tensorboard DIR` option of `seqmem train` and `seqmem run`."""

import json
import math
import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.colors import to_hex
from tensorboard.backend.event_processing.event_accumulator import IMAGES, SCALARS, EventAccumulator

from seqmem import cli
from seqmem.analysis import make_probe
from seqmem.cli import main, main_for_study
from seqmem.config import ProbeConfig, RunConfig, TrainConfig
from seqmem.report.style import cell_color
from seqmem.results import load_study
from seqmem.sweep import Study, train_run
from seqmem.tensorboard import (
    GRADIENT_PROBE,
    GRADIENT_TAG,
    MISSING_TENSORBOARD,
    TensorBoardLogger,
    gradient_decay_curve,
    scalars_of,
    tensorboard_run,
)
from seqmem.train import train

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMALL_PROBE = ProbeConfig(quantities=("grad_norm",), batch_size=8)
SIZES = {"hidden_size": 8, "batch_size": 8, "eval_batch_size": 16, "max_steps": 6, "eval_every": 2}
LSTM_COPY = TrainConfig(
    task="copy", task_params={"delay": 4, "n_copy": 3, "n_symbols": 4}, cell="lstm", **SIZES
)


def read_events(log_dir: Path) -> EventAccumulator:
    """Every scalar and image of the event files in ``log_dir`` (0: keep all, not a sample)."""
    return EventAccumulator(str(log_dir), size_guidance={SCALARS: 0, IMAGES: 0}).Reload()


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """(log dir, result) of LSTM_COPY with SMALL_PROBE, trained by the sweeps' logging run function."""
    board, run = tmp_path_factory.mktemp("tb"), RunConfig(LSTM_COPY, SMALL_PROBE)
    return board / run.run_id, tensorboard_run(run, log_dir=board)


def test_scalars_read_back_equal_the_runs_history(logged):
    log_dir, result = logged
    events = read_events(log_dir)
    history = result.history.set_index("step")
    metrics = ["loss", "loss_ratio", "accuracy", "error_rate"]  # the copy task's metrics
    expected = {f"eval/{m}": history[m] for m in metrics} | {
        "train/loss": history["train_loss"].drop(0),  # no training step before step 0
        "train/grad_norm": history["grad_norm"].drop(0),
        "train/grad_norm_max": history["grad_norm_max"].drop(0),
    }
    assert sorted(events.Tags()["scalars"]) == sorted(expected)
    for tag, column in expected.items():
        read = events.Scalars(tag)
        assert [e.step for e in read] == list(column.index) == ([2, 4, 6] if "train" in tag else [0, 2, 4, 6])
        # TensorBoard stores scalars as float32
        np.testing.assert_array_equal([e.value for e in read], column.to_numpy(np.float32), err_msg=tag)


def test_a_gradient_decay_image_at_every_probe(logged):
    log_dir, result = logged
    events = read_events(log_dir)
    assert events.Tags()["images"] == [GRADIENT_TAG]
    images = events.Images(GRADIENT_TAG)
    assert [e.step for e in images] == sorted(result.probes["step"].unique()) == [0, 2, 4, 6]
    for image in images:
        assert image.encoded_image_string.startswith(PNG_MAGIC)
        assert image.width > 300 and image.height > 200


def test_the_logger_changes_nothing_the_run_records(logged):
    _, logged_result = logged
    plain = train_run(RunConfig(LSTM_COPY, SMALL_PROBE))  # the sweeps' default run function
    columns = [c for c in plain.history.columns if c != "elapsed_s"]
    pd.testing.assert_frame_equal(logged_result.history[columns], plain.history[columns])
    pd.testing.assert_frame_equal(logged_result.probes, plain.probes)
    for name, tensor in plain.state_dict.items():
        assert torch.equal(logged_result.state_dict[name], tensor), name


def test_without_a_probe_only_scalars_are_logged(tmp_path):
    config = TrainConfig(task="adding", task_params={"length": 6}, cell="rnn", hidden_size=4, max_steps=2)
    result = train(config, callbacks=[TensorBoardLogger(tmp_path)])
    events = read_events(tmp_path)
    assert events.Tags()["images"] == [] and result.probes.empty
    assert [e.value for e in events.Scalars("eval/abs_error")] == pytest.approx(
        result.history["abs_error"].tolist()
    )


def test_scalars_of_a_history_row():
    row = {"step": 0, "sequences_seen": 0, "loss": 0.5, "loss_ratio": 1.5, "accuracy": 0.25}
    row |= {"train_loss": math.nan, "grad_norm": math.nan, "grad_norm_max": math.nan}
    row |= {"elapsed_s": 0.1, "solved": False}
    assert scalars_of(row) == {"eval/loss": 0.5, "eval/loss_ratio": 1.5, "eval/accuracy": 0.25}
    later = scalars_of(
        row | {"step": 10, "train_loss": 0.4, "grad_norm": math.inf, "grad_norm_max": math.inf}
    )
    assert later["train/loss"] == 0.4 and later["train/grad_norm"] == math.inf  # a diverging step shows


def probe_frame(quantity: str, values: list[float], phase: str = "final") -> pd.DataFrame:
    return pd.DataFrame(
        {"phase": phase, "quantity": quantity, "stat": "mean", "lag": range(len(values)), "value": values}
    )


def test_the_curve_is_log10_of_the_means_by_lag_in_the_cells_colour():
    rows = pd.concat(
        [
            probe_frame("grad_norm", [1.0, 1e-2, 1e-4]),
            probe_frame("cell_grad_norm", [1.0, 0.5, 0.25]),
            probe_frame("grad_norm", [9.0, 9.0, 9.0]).assign(stat="median"),  # not the mean: not drawn
        ]
    )
    start = probe_frame("grad_norm", [1.0, 1e-1, 0.0], phase="init")  # 0: no point on a log axis
    fig = gradient_decay_curve(rows, "lstm", "title", start)
    (ax,) = fig.axes
    hidden, cell_state, initial = ax.get_lines()
    np.testing.assert_allclose(hidden.get_ydata(), [0.0, -2.0, -4.0])
    np.testing.assert_allclose(cell_state.get_ydata(), np.log10([1.0, 0.5, 0.25]))
    np.testing.assert_allclose(initial.get_xydata(), [[0.0, 0.0], [1.0, -1.0]])
    assert to_hex(hidden.get_color()) == to_hex(cell_state.get_color()) == cell_color("lstm").lower()
    assert cell_state.get_linestyle() == "--"
    assert gradient_decay_curve(probe_frame("gate_f", [0.5]), "lstm", "title") is None


def test_a_probe_that_is_no_probe_config_is_refused():
    with pytest.raises(ValueError, match=r"^probe=.* is invalid: must be a ProbeConfig or None$"):
        TensorBoardLogger("unused", make_probe(SMALL_PROBE))


# -- the command line ----------------------------------------------------------------------------

TRAIN_ARGS = ["train", "--task", "adding", "--length", "8", "--cell", "gru", "--hidden-size", "4"]
TRAIN_ARGS += ["--steps", "2", "--eval-every", "1", "--batch-size", "4"]


def test_seqmem_train_logs_under_dir_run_id_and_stores_the_probe_with_out(tmp_path, capsys):
    board, out = tmp_path / "board", tmp_path / "out"
    assert main([*TRAIN_ARGS, "--tensorboard", str(board), "--out", str(out)]) == 0
    frames = load_study(out)
    (run_id,) = frames.runs["run_id"]
    assert [p.name for p in board.iterdir()] == [run_id]
    events = read_events(board / run_id)
    assert [e.step for e in events.Images(GRADIENT_TAG)] == [0, 1, 2]
    assert [e.value for e in events.Scalars("eval/loss")] == pytest.approx(frames.metrics["loss"].tolist())
    assert set(frames.analysis["quantity"]) == {"grad_norm"}  # GRADIENT_PROBE's rows, stored
    assert (
        json.loads((out / "runs" / run_id / "config.json").read_text())["probe"] == GRADIENT_PROBE.to_dict()
    )
    assert f"logged to {board / run_id}" in capsys.readouterr().out


def test_the_run_function_is_picklable_for_process_and_dask_workers(tmp_path):
    run_fn = cli.run_function(tmp_path)
    assert run_fn.func is tensorboard_run and run_fn.keywords == {"log_dir": tmp_path.resolve()}
    copy = pickle.loads(pickle.dumps(run_fn))
    assert copy.func is tensorboard_run and copy.keywords == run_fn.keywords
    assert cli.run_function(None) is train_run


def test_seqmem_run_logs_every_run_it_trains(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "write_report", lambda frames, info, out: out / "index.html")
    base = {"task": "adding", "task_params.length": 6, "cell": "rnn", "hidden_size": 4, "max_steps": 2}
    study = Study(name="logged", base=base, axes={"seed": [0, 1]}, presets={"quick": {}}, probe=SMALL_PROBE)
    board = tmp_path / "board"
    argv = ["--out", str(tmp_path), "--workers", "2", "--tensorboard", str(board)]
    assert main_for_study(study, argv) == 0  # two worker processes: the run function went through pickle
    grid = study.grid("quick")
    assert sorted(p.name for p in board.iterdir()) == sorted(run.run_id for run in grid)
    for run in grid:
        assert [e.step for e in read_events(board / run.run_id).Images(GRADIENT_TAG)] == [0, 2]


def test_without_tensorboard_the_flag_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import now raises ImportError
    out = tmp_path / "out"
    assert main([*TRAIN_ARGS, "--tensorboard", str(tmp_path / "board"), "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"seqmem: error: --tensorboard is unavailable: {MISSING_TENSORBOARD}\n"
    assert "pip install 'seqmem[tensorboard]'" in MISSING_TENSORBOARD
    assert not out.exists() and not (tmp_path / "board").exists()  # refused before anything ran
    study = Study(name="s", base={"task": "adding", "task_params.length": 6, "cell": "rnn", "max_steps": 1})
    assert main_for_study(study, ["--out", str(tmp_path), "--tensorboard", str(tmp_path / "b")]) == 2
    assert "--tensorboard is unavailable" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
