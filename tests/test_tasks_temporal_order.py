"""tasks/temporal_order.py: the temporal order problem (Hochreiter & Schmidhuber 1997, 6a/6b)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from tasks import Batch, TemporalOrderTask
from tasks.temporal_order import SYMBOLS

N = 10_000
TASKS = [TemporalOrderTask(), TemporalOrderTask(length=50, n_markers=3)]


@pytest.fixture(scope="module")
def draws() -> dict[str, Batch]:
    return {str(t): t.sample(N, torch.Generator().manual_seed(6)) for t in TASKS}


@pytest.fixture(params=TASKS, ids=str)
def task(request: pytest.FixtureRequest) -> TemporalOrderTask:
    return request.param


def symbols_of(batch: Batch) -> torch.Tensor:
    """Token index per step, -1 on padding."""
    inside = batch.inputs.sum(-1) > 0
    return torch.where(inside, batch.inputs.argmax(-1), -1)


def test_papers_ranges_at_length_100() -> None:
    assert TemporalOrderTask(n_markers=2).ranges == ((10, 20), (50, 60))
    assert TemporalOrderTask(n_markers=3).ranges == ((10, 20), (33, 43), (66, 76))
    assert TemporalOrderTask(length=200, n_markers=2).ranges == ((20, 40), (100, 120))


def test_sequence_frame(draws: dict, task: TemporalOrderTask) -> None:
    batch = draws[str(task)]
    tokens = symbols_of(batch)
    rows, ends = torch.arange(N), batch.lengths - 1
    assert (tokens[:, 0] == SYMBOLS.index("E")).all()
    assert (tokens[rows, ends] == SYMBOLS.index("B")).all()
    is_marker = (tokens == SYMBOLS.index("X")) | (tokens == SYMBOLS.index("Y"))
    assert (is_marker.sum(1) == task.n_markers).all()
    inside = torch.arange(batch.seq_len) < batch.lengths[:, None]
    assert (inside.sum(1) == batch.lengths).all() and ((tokens >= 0) == inside).all()
    counts = torch.bincount(tokens[inside], minlength=len(SYMBOLS))
    assert counts[SYMBOLS.index("E")] == N and counts[SYMBOLS.index("B")] == N


def test_labels_recomputed_from_the_order(draws: dict, task: TemporalOrderTask) -> None:
    batch = draws[str(task)]
    tokens = symbols_of(batch)
    is_marker = (tokens == SYMBOLS.index("X")) | (tokens == SYMBOLS.index("Y"))
    ys = (tokens[is_marker] == SYMBOLS.index("Y")).reshape(N, task.n_markers).long()
    # the paper's table: XX->Q, XY->R, YX->S, YY->U (and likewise for 8 classes)
    label = (ys * 2 ** torch.arange(task.n_markers - 1, -1, -1)).sum(1)
    assert torch.equal(batch.targets[torch.arange(N), batch.lengths - 1], label)
    assert stats.chisquare(torch.bincount(label, minlength=task.output_size).numpy()).pvalue > 1e-3


def test_marker_positions_cover_their_ranges(draws: dict, task: TemporalOrderTask) -> None:
    tokens = symbols_of(draws[str(task)])
    is_marker = (tokens == SYMBOLS.index("X")) | (tokens == SYMBOLS.index("Y"))
    positions = is_marker.nonzero()[:, 1].reshape(N, task.n_markers)
    for k, (lo, hi) in enumerate(task.ranges):
        counts = torch.bincount(positions[:, k] - lo)
        assert int(positions[:, k].min()) == lo and len(counts) == hi - lo + 1
        assert stats.chisquare(counts.numpy()).pvalue > 1e-3


def test_distractors_and_lengths_uniform(draws: dict, task: TemporalOrderTask) -> None:
    batch = draws[str(task)]
    tokens = symbols_of(batch)
    assert stats.chisquare(torch.bincount(tokens[(tokens >= 0) & (tokens < 4)]).numpy()).pvalue > 1e-3
    lengths = torch.bincount(batch.lengths - task.length)
    assert len(lengths) == task.length // 10 + 1
    assert stats.chisquare(lengths.numpy()).pvalue > 1e-3


def test_memory_lag(draws: dict, task: TemporalOrderTask) -> None:
    batch = draws[str(task)]
    tokens = symbols_of(batch)
    first = ((tokens == SYMBOLS.index("X")) | (tokens == SYMBOLS.index("Y"))).float().argmax(1)
    assert int((batch.lengths - 1 - first).max()) == task.memory_lag


def test_error_rate_is_the_03_criterion_and_accuracy_the_argmax() -> None:
    task = TemporalOrderTask(length=20)
    batch = task.sample(2, torch.Generator().manual_seed(0))
    # softmax probability p on the target, the rest shared by the other 3 classes
    probability = torch.tensor([0.75, 0.65])[:, None, None]
    one_hot = torch.nn.functional.one_hot(batch.targets, 4).float()
    outputs = torch.log(one_hot * probability + (1 - one_hot) * (1 - probability) / 3)
    metrics = task.metrics(outputs, batch)
    assert metrics["accuracy"] == 1.0  # both argmax right
    assert metrics["error_rate"] == 0.5  # 1 - 0.65 = 0.35 misses the 0.3 criterion
    assert not task.is_solved(metrics)
    assert task.is_solved({**metrics, "error_rate": 0.0})


def test_sequence_correct_is_the_03_criterion_per_sequence() -> None:
    task = TemporalOrderTask(length=20)
    batch = task.sample(3, torch.Generator().manual_seed(0))
    probability = torch.tensor([0.75, 0.65, 0.1])[:, None, None]  # the last one names a wrong class
    one_hot = torch.nn.functional.one_hot(batch.targets, 4).float()
    outputs = torch.log(one_hot * probability + (1 - one_hot) * (1 - probability) / 3)
    outputs[~batch.mask] = torch.tensor([9.0, 0.0, 0.0, 0.0])  # off the trigger nothing counts
    assert task.sequence_correct(outputs, batch).tolist() == [True, False, False]


def test_baseline_is_log_classes() -> None:
    assert TemporalOrderTask(n_markers=3).baseline_loss() == pytest.approx(math.log(8))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"length": 9}, "length"),
        ({"length": 100.0}, "length"),
        ({"n_markers": 1}, "n_markers"),
        ({"n_markers": 4}, "n_markers"),
    ],
)
def test_invalid_parameters(params: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}="):
        TemporalOrderTask(**params)


@pytest.mark.parametrize("length", [10, 11, 17, 33])
def test_smallest_lengths_keep_ranges_apart(length: int) -> None:
    for n_markers in (2, 3):
        ranges = TemporalOrderTask(length=length, n_markers=n_markers).ranges
        bounds = [b for r in ranges for b in r]
        assert bounds[0] >= 1 and bounds[-1] < length - 1
        assert all(hi < lo for (_, hi), (lo, _) in zip(ranges, ranges[1:], strict=False))


def test_describe_names_the_class() -> None:
    task = TemporalOrderTask()
    text = task.describe(torch.Generator().manual_seed(3))
    batch = task.sample(1, torch.Generator().manual_seed(3))
    tokens = [SYMBOLS[i] for i in symbols_of(batch)[0].tolist() if i in (4, 5)]
    assert f"= {''.join(tokens)}" in text
