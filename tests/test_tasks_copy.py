"""tasks/copy.py: the copy task of Arjovsky, Shah & Bengio 2016."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from tasks import CopyTask


@pytest.fixture(params=[CopyTask(delay=1, n_copy=3, n_symbols=4), CopyTask(delay=30)], ids=str)
def task(request: pytest.FixtureRequest) -> CopyTask:
    return request.param


def draw(task: CopyTask, n: int = 256, seed: int = 0):
    batch = task.sample(n, torch.Generator().manual_seed(seed))
    return batch, batch.inputs.argmax(-1)


def test_layout_follows_the_paper(task: CopyTask) -> None:
    batch, tokens = draw(task)
    delay, k, blank, delimiter = task.delay, task.n_copy, 0, task.n_symbols + 1
    assert batch.seq_len == delay + 2 * k and (batch.lengths == delay + 2 * k).all()
    assert (batch.inputs.sum(-1) == 1).all()  # one-hot everywhere
    symbols = tokens[:, :k]
    assert ((symbols >= 1) & (symbols <= task.n_symbols)).all()
    assert (tokens[:, k : delay + k - 1] == blank).all()
    assert (tokens[:, delay + k - 1] == delimiter).all()
    assert (tokens[:, delay + k :] == blank).all()
    assert batch.mask.all()  # the paper scores every step


def test_targets_are_the_copied_inputs(task: CopyTask) -> None:
    batch, tokens = draw(task)
    recall = task.delay + task.n_copy
    assert torch.equal(batch.targets[:, recall:], tokens[:, : task.n_copy])
    assert (batch.targets[:, :recall] == 0).all()


def test_symbols_are_uniform() -> None:
    task = CopyTask(delay=2, n_copy=10, n_symbols=8)
    _, tokens = draw(task, n=2000, seed=1)  # 20k symbols
    counts = torch.bincount(tokens[:, : task.n_copy].flatten(), minlength=task.n_symbols + 1)[1:]
    assert stats.chisquare(counts.numpy()).pvalue > 1e-3


def test_memory_lag_and_reference_step(task: CopyTask) -> None:
    batch, tokens = draw(task)
    # the lag from each copied symbol to the step that reproduces it
    shown = torch.arange(task.n_copy)
    recalled = (batch.targets[0] != 0).nonzero()[:, 0]
    assert int((recalled - shown).max()) == task.memory_lag
    assert (task.reference_steps(batch) == int(recalled.min())).all()


def test_baseline_is_the_papers_formula() -> None:
    # Arjovsky et al.: 10 ln 8 / (T + 20), the line every cell in their Figure 1 starts on
    assert CopyTask(delay=100).baseline_loss() == pytest.approx(10 * math.log(8) / 120)


def test_accuracy_counts_recall_steps_only(task: CopyTask) -> None:
    batch, _ = draw(task, n=8)
    recall = task.delay + task.n_copy
    outputs = 20.0 * torch.nn.functional.one_hot(batch.targets, task.output_size).float()
    outputs[:, :recall] = torch.flip(outputs[:, :recall], dims=[-1])  # every blank answered wrong
    outputs[0, recall, :] = -outputs[0, recall, :]  # one symbol of sequence 0 wrong
    metrics = task.metrics(outputs, batch)
    assert metrics["accuracy"] == pytest.approx(1 - 1 / (8 * task.n_copy))
    assert metrics["error_rate"] == pytest.approx(1 / 8)


@pytest.mark.parametrize(("accuracy", "solved"), [(0.99, True), (1.0, True), (0.989, False)])
def test_solved_at_99_percent_of_symbols(accuracy: float, solved: bool) -> None:
    assert CopyTask(delay=10).is_solved({"loss": 0.0, "loss_ratio": 0.0, "accuracy": accuracy}) is solved


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"delay": 0}, "delay"),
        ({"delay": -5}, "delay"),
        ({"delay": 2.0}, "delay"),
        ({"delay": "10"}, "delay"),
        ({"delay": 10, "n_copy": 0}, "n_copy"),
        ({"delay": 10, "n_symbols": 1}, "n_symbols"),
        ({"delay": 10, "n_symbols": None}, "n_symbols"),
    ],
)
def test_invalid_parameters(params: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}=") as info:
        CopyTask(**params)
    assert "\n" not in str(info.value)


def test_describe_shows_the_symbols_twice() -> None:
    task = CopyTask(delay=50, n_copy=5)
    text = task.describe(torch.Generator().manual_seed(2))
    _, tokens = draw(task, n=1, seed=2)
    symbols = " ".join(str(s) for s in tokens[0, :5].tolist())
    input_line, target_line = text.splitlines()[1:]
    assert input_line.split(": ", 1)[1].startswith(symbols) and target_line.endswith(symbols)
    assert "×" in input_line  # the long blank run is folded
    assert "not scored" not in text  # the copy task scores every step
