"""tasks/adding.py: the adding problem (both marker schemes) and multiplication."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from tasks import AddingTask, Batch, MultiplicationTask
from tasks.adding import MarkedPairTask

N = 10_000
ARJOVSKY = AddingTask(length=60)
HOCHREITER = AddingTask(length=100, variant="hochreiter1997")
MULTIPLICATION = MultiplicationTask(length=100)
ALL = [ARJOVSKY, HOCHREITER, MULTIPLICATION]
HOCHREITER_SCHEME = [HOCHREITER, MULTIPLICATION]


@pytest.fixture(scope="module")
def draws() -> dict[str, Batch]:
    """One 10k-sequence batch per task, shared by the statistical tests."""
    return {str(t): t.sample(N, torch.Generator().manual_seed(4)) for t in ALL}


def pick(draws: dict[str, Batch], task: MarkedPairTask) -> tuple[torch.Tensor, torch.Tensor, Batch]:
    batch = draws[str(task)]
    return batch.inputs[..., 0], batch.inputs[..., 1], batch


def ends(batch: Batch) -> torch.Tensor:
    return batch.lengths - 1


@pytest.mark.parametrize("task", ALL, ids=str)
def test_targets_recomputed_from_the_inputs(draws: dict, task: MarkedPairTask) -> None:
    values, markers, batch = pick(draws, task)
    if isinstance(task, MultiplicationTask):
        expected = torch.where(markers == 1.0, values, 1.0).prod(1)
    else:
        total = torch.where(markers == 1.0, values, 0.0).sum(1)
        expected = total if task.variant == "arjovsky2016" else 0.5 + total / 4.0
    rows = torch.arange(N)
    assert torch.allclose(batch.targets[rows, ends(batch)], expected, atol=1e-6)
    assert batch.mask.sum(1).eq(1).all() and batch.mask[rows, ends(batch)].all()


@pytest.mark.parametrize("task", ALL, ids=str)
def test_exactly_two_markers_and_the_sentinels(draws: dict, task: MarkedPairTask) -> None:
    values, markers, batch = pick(draws, task)
    assert ((markers == 1.0).sum(1) == 2).all()
    rows = torch.arange(N)
    if task.variant == "arjovsky2016":
        assert ((markers == 0) | (markers == 1)).all()
        assert (batch.lengths == task.length).all()
        return
    first_free = markers[:, 0] != 1.0
    assert (markers[first_free, 0] == -1.0).all()
    assert (markers[rows, ends(batch)] == -1.0).all()
    assert ((markers == -1.0).sum(1) == 1 + first_free.long()).all()


@pytest.mark.parametrize(
    ("task", "low"), [(ARJOVSKY, 0.0), (HOCHREITER, -1.0), (MULTIPLICATION, 0.0)], ids=str
)
def test_values_are_uniform(draws: dict, task: MarkedPairTask, low: float) -> None:
    values, markers, batch = pick(draws, task)
    inside = torch.arange(batch.seq_len) < batch.lengths[:, None]
    sample = values[inside & (markers == 0)][:20_000].numpy()  # unmarked, no special first pair
    assert stats.kstest(sample, stats.uniform(loc=low, scale=1.0 - low).cdf).pvalue > 1e-3


def test_arjovsky_markers_one_per_half_uniformly(draws: dict) -> None:
    _, markers, _ = pick(draws, ARJOVSKY)
    positions = (markers == 1.0).nonzero()[:, 1].reshape(N, 2)
    half = ARJOVSKY.length // 2
    assert (positions[:, 0] < half).all() and (positions[:, 1] >= half).all()
    for counts in (torch.bincount(positions[:, 0], minlength=half), torch.bincount(positions[:, 1] - half)):
        assert len(counts) == half and (counts > 0).all()
        assert stats.chisquare(counts.numpy()).pvalue > 1e-3


@pytest.mark.parametrize("task", HOCHREITER_SCHEME, ids=str)
def test_hochreiter_marker_positions(draws: dict, task: MarkedPairTask) -> None:
    """X1 uniform over the first ten pairs, X2 uniform over the other pairs
    among the first T/2: position j is marked with probability
    [j < 10]/10 + (1 - [j < 10]/10) / (T/2 - 1)."""
    _, markers, _ = pick(draws, task)
    half = task.length // 2
    counts = (markers == 1.0).sum(0).numpy()
    assert counts[half:].sum() == 0
    first_ten = (np.arange(half) < 10) / 10
    expected = N * (first_ten + (1 - first_ten) / (half - 1))
    assert (counts[:half] > 0).all()
    assert stats.chisquare(counts[:half], expected).pvalue > 1e-3


@pytest.mark.parametrize("task", HOCHREITER_SCHEME, ids=str)
def test_hochreiter_lengths_uniform(draws: dict, task: MarkedPairTask) -> None:
    _, _, batch = pick(draws, task)
    counts = torch.bincount(batch.lengths - task.length)
    assert len(counts) == task.length // 10 + 1 and (counts > 0).all()
    assert stats.chisquare(counts.numpy()).pvalue > 1e-3


@pytest.mark.parametrize(("task", "x1"), [(HOCHREITER, 0.0), (MULTIPLICATION, 1.0)], ids=str)
def test_marked_first_pair_gets_the_papers_x1(draws: dict, task: MarkedPairTask, x1: float) -> None:
    """X1 lands on the first pair one time in ten and is then replaced."""
    values, markers, _ = pick(draws, task)
    replaced = int(((markers[:, 0] == 1.0) & (values[:, 0] == x1)).sum())
    assert stats.binomtest(replaced, N, 0.1).pvalue > 1e-3


@pytest.mark.parametrize("task", ALL, ids=str)
def test_memory_lag_is_the_longest_marker_to_answer_distance(draws: dict, task: MarkedPairTask) -> None:
    _, markers, batch = pick(draws, task)
    first = (markers == 1.0).float().argmax(1)
    assert int((ends(batch) - first).max()) == task.memory_lag
    assert torch.equal(task.reference_steps(batch), ends(batch))


def test_regression_metrics_use_the_004_criterion() -> None:
    batch = HOCHREITER.sample(8, torch.Generator().manual_seed(0))
    offsets = torch.tensor([0.05, -0.045, 0.01, -0.03, 0.0, 0.039, 0.02, -0.001])
    outputs = (batch.targets + offsets[:, None])[..., None]
    metrics = HOCHREITER.metrics(outputs, batch)
    assert metrics["error_rate"] == pytest.approx(2 / 8)
    assert metrics["abs_error"] == pytest.approx(float(offsets.abs().mean()), rel=1e-5)
    assert metrics["loss"] == pytest.approx(float((offsets**2).mean()), rel=1e-4)
    assert not HOCHREITER.is_solved(metrics)


@pytest.mark.parametrize("task", HOCHREITER_SCHEME, ids=str)
def test_sequence_correct_is_the_004_criterion_at_each_end(task: MarkedPairTask) -> None:
    batch = task.sample(8, torch.Generator().manual_seed(1))
    offsets = torch.tensor([0.05, -0.045, 0.01, -0.03, 0.0, 0.039, 0.02, -0.001])
    outputs = (batch.targets + offsets[:, None])[..., None]
    outputs[~batch.mask] = 5.0  # off the scored step nothing counts
    correct = task.sequence_correct(outputs, batch)
    assert correct.tolist() == [False, False, True, True, True, True, True, True]
    assert 1.0 - float(correct.float().mean()) == pytest.approx(task.metrics(outputs, batch)["error_rate"])


@pytest.mark.parametrize(
    ("task", "metrics", "solved"),
    [
        (ARJOVSKY, {"loss": 0.0099, "error_rate": 1.0}, True),
        (ARJOVSKY, {"loss": 0.0101, "error_rate": 0.0}, False),
        (HOCHREITER, {"loss": 0.0, "error_rate": 0.0}, True),
        (HOCHREITER, {"loss": 0.0, "error_rate": 1 / 2560}, False),
        (MULTIPLICATION, {"loss": 0.02, "error_rate": 139 / 2560}, True),
        (MULTIPLICATION, {"loss": 0.02, "error_rate": 0.07}, False),
    ],
    ids=str,
)
def test_solved_criteria(task: MarkedPairTask, metrics: dict, solved: bool) -> None:
    assert task.is_solved(metrics) is solved


def test_closed_form_baselines() -> None:
    """Independent arithmetic: Var(U[0,1] + U[0,1]); Var(X1 + X2)/16 with X1 = 0
    one time in ten; Var(X1 X2) with X1 = 1 one time in ten (moments by
    numerical integration)."""
    assert ARJOVSKY.baseline_loss() == pytest.approx(2 / 12)
    grid = (np.arange(200_000) + 0.5) / 200_000  # midpoint rule on [0, 1]
    var_x1 = 0.9 * np.mean((2 * grid - 1) ** 2)
    assert HOCHREITER.baseline_loss() == pytest.approx((var_x1 + np.mean((2 * grid - 1) ** 2)) / 16)
    m1, m2 = 0.1 + 0.9 * grid.mean(), 0.1 + 0.9 * np.mean(grid**2)
    assert MULTIPLICATION.baseline_loss() == pytest.approx(m2 * np.mean(grid**2) - (m1 * grid.mean()) ** 2)


@pytest.mark.parametrize(
    ("cls", "params", "field"),
    [
        (AddingTask, {"length": 1}, "length"),
        (AddingTask, {"length": 19, "variant": "hochreiter1997"}, "length"),
        (AddingTask, {"length": 100, "variant": "le2015"}, "variant"),
        (AddingTask, {"length": 100.0}, "length"),
        (MultiplicationTask, {"length": 10}, "length"),
        (MultiplicationTask, {"length": "100"}, "length"),
    ],
)
def test_invalid_parameters(cls: type, params: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}="):
        cls(**params)


def test_multiplication_has_no_variant_parameter() -> None:
    assert MULTIPLICATION.params() == {"length": 100}


@pytest.mark.parametrize("task", ALL, ids=str)
def test_describe_shows_the_marked_values_and_target(task: MarkedPairTask) -> None:
    text = task.describe(torch.Generator().manual_seed(1))
    batch = task.sample(1, torch.Generator().manual_seed(1))
    values, markers = batch.inputs[0].T
    for value in values[markers == 1.0].tolist():
        assert f"{value:.2f}" in text
    assert f"{float(batch.targets[0, batch.lengths[0] - 1]):.4f}" in text
