"""tasks/long_lag.py: Hochreiter & Schmidhuber (1997) experiment 2, tasks 2a/2b (LongLagTask) and
2c (VeryLongLagTask)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from task_checks import assert_seeded

from seqmem.cli import main
from tasks import Batch, LongLagTask, VeryLongLagTask, make_task
from tasks.long_lag import MAX_EXTRA, truncated_geometric

N = 10_000
P = 30
TASK_2A, TASK_2B = LongLagTask(p=P), LongLagTask(p=P, variant="2b")
TASK_2C = VeryLongLagTask(q=20, p=10)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def draws() -> dict[str, Batch]:
    return {str(t): t.sample(N, seeded(2)) for t in (TASK_2A, TASK_2B, TASK_2C)}


def sequences(batch: Batch) -> torch.Tensor:
    """2a/2b: the whole sequence, (B, p + 1) symbol indices: the inputs and the last target."""
    return torch.cat([batch.inputs.argmax(-1), batch.targets[:, -1:]], dim=1)


def outputs_with(batch: Batch, where: torch.Tensor, probability: torch.Tensor, classes: int) -> torch.Tensor:
    """Log-probabilities: ``probability`` (per sequence) on the target at the ``where`` steps, the
    rest shared evenly; uniform elsewhere."""
    one_hot = torch.nn.functional.one_hot(batch.targets, classes).float()
    p = probability[:, None, None]
    scored = torch.log(one_hot * p + (1 - one_hot) * (1 - p) / (classes - 1))
    return torch.where(where[..., None], scored, torch.zeros_like(scored))


# -- 2a / 2b ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", [TASK_2A, TASK_2B], ids=str)
def test_first_and_last_symbol_are_the_same_x_or_y(draws: dict, task: LongLagTask) -> None:
    tokens = sequences(draws[str(task)])
    x, y = P - 1, P
    assert ((tokens[:, 0] == x) | (tokens[:, 0] == y)).all()
    assert torch.equal(tokens[:, -1], tokens[:, 0])
    assert (tokens[:, 1:-1] < x).all()  # x and y occur only at both ends
    assert stats.binomtest(int((tokens[:, 0] == y).sum()), N, 0.5).pvalue > 1e-3


def test_2a_filler_is_the_fixed_run(draws: dict) -> None:
    tokens = sequences(draws[str(TASK_2A)])
    assert (tokens[:, 1:-1] == torch.arange(P - 1)).all()


def test_2b_filler_is_uniform_and_independent(draws: dict) -> None:
    filler = sequences(draws[str(TASK_2B)])[:, 1:-1]
    assert stats.chisquare(torch.bincount(filler.flatten(), minlength=P - 1).numpy()).pvalue > 1e-3
    pairs = filler[:, :-1] * (P - 1) + filler[:, 1:]  # consecutive symbols: uniform over all pairs
    assert stats.chisquare(torch.bincount(pairs.flatten(), minlength=(P - 1) ** 2).numpy()).pvalue > 1e-3


def conditional_entropy(targets: torch.Tensor, given: torch.Tensor) -> float:
    """Plug-in H(target | given) in nats from paired samples."""
    joint = torch.bincount(given * 1000 + targets).double()
    marginal = torch.bincount(given).double()
    joint_p = joint[joint > 0] / joint.sum()
    marginal_p = marginal[marginal > 0] / marginal.sum()
    return float(-(joint_p * joint_p.log()).sum() + (marginal_p * marginal_p.log()).sum())


def test_2a_filler_is_predictable_and_2b_filler_is_not(draws: dict) -> None:
    """Every filler target of 2a is fixed by its step; in 2b neither the step nor the current
    symbol tells anything about it (ln(p - 1) nats), so only the final x/y is predictable."""
    for task, expected in ((TASK_2A, 0.0), (TASK_2B, math.log(P - 1))):
        batch = draws[str(task)]
        steps = torch.arange(P - 1).expand(N, -1)  # the steps whose target is a filler symbol
        targets, current = batch.targets[:, :-1], batch.inputs[:, :-1].argmax(-1)
        by_step = conditional_entropy(targets.flatten(), steps.flatten())
        by_input = conditional_entropy(targets[:, 1:].flatten(), current[:, 1:].flatten())
        assert by_step == pytest.approx(expected, abs=0.01) and by_input == pytest.approx(expected, abs=0.01)
        first, last = batch.inputs[:, 0].argmax(-1), batch.targets[:, -1]
        assert conditional_entropy(last, first) == 0.0


@pytest.mark.parametrize("task", [TASK_2A, TASK_2B], ids=str)
def test_every_step_is_scored_and_the_last_is_the_reference(draws: dict, task: LongLagTask) -> None:
    batch = draws[str(task)]
    assert batch.inputs.shape == (N, P, P + 1) and batch.mask.all() and (batch.lengths == P).all()
    assert torch.equal(batch.targets[:, :-1], batch.inputs[:, 1:].argmax(-1))
    assert task.memory_lag == P - 1 and (task.reference_steps(batch) == P - 1).all()


def test_2ab_criterion_is_abs_025_at_the_last_step_only() -> None:
    batch = TASK_2B.sample(4, seeded(0))
    last = torch.zeros_like(batch.mask)
    last[:, -1] = True
    # 0.77 on the target: error 0.23: right; 0.73: error 0.27: wrong; 0.02 < 0.98 / p: argmax wrong
    outputs = outputs_with(batch, last, torch.tensor([0.77, 0.73, 0.9, 0.02]), P + 1)
    metrics = TASK_2B.metrics(outputs, batch)
    assert metrics["error_rate"] == 0.5 and metrics["accuracy"] == 0.75
    assert TASK_2B.sequence_correct(outputs, batch).tolist() == [True, False, True, False]
    assert not TASK_2B.is_solved(metrics) and TASK_2B.is_solved({**metrics, "error_rate": 0.0})


def test_2ab_baselines_in_closed_form() -> None:
    """ln 2 at the end; 2b adds ln(p - 1) per filler step; p steps in all."""
    assert TASK_2A.baseline_loss() == pytest.approx(math.log(2) / P)
    assert TASK_2B.baseline_loss() == pytest.approx((math.log(2) + (P - 1) * math.log(P - 1)) / P)


# -- 2c ----------------------------------------------------------------------------------------------


def test_2c_sequence_frame(draws: dict) -> None:
    batch, (b, x, e) = draws[str(TASK_2C)], (11, 12, 10)  # a1..a10 = 0..9, e, b, x, y
    rows, lengths = torch.arange(N), batch.lengths
    tokens = batch.inputs.argmax(-1)
    inside = torch.arange(batch.seq_len) < lengths[:, None]
    assert batch.seq_len == int(lengths.max()) and (batch.inputs[~inside] == 0).all()
    assert (tokens[:, 0] == b).all() and ((tokens[:, 1] == x) | (tokens[:, 1] == x + 1)).all()
    assert (tokens[rows, lengths - 1] == e).all()
    between = (
        inside & (torch.arange(batch.seq_len) >= 2) & (torch.arange(batch.seq_len) < lengths[:, None] - 1)
    )
    assert (tokens[between] < 10).all() and (between.sum(1) == lengths - 3).all()
    assert stats.chisquare(torch.bincount(tokens[between]).numpy()).pvalue > 1e-3


def test_2c_only_the_trigger_is_scored_and_asks_for_the_second_symbol(draws: dict) -> None:
    batch = draws[str(TASK_2C)]
    rows = torch.arange(N)
    assert torch.equal(batch.mask, torch.nn.functional.one_hot(batch.lengths - 1, batch.seq_len).bool())
    assert torch.equal(batch.targets[rows, batch.lengths - 1], batch.inputs[:, 1].argmax(-1) - 12)
    assert torch.equal(TASK_2C.reference_steps(batch), batch.lengths - 1)


def test_2c_extra_distractors_are_geometric(draws: dict) -> None:
    """k = length - q - 3: each further symbol is a distractor with probability 9/10."""
    extra = (draws[str(TASK_2C)].lengths - TASK_2C.q - 3).numpy()
    bins = np.arange(40)
    expected = 0.1 * 0.9**bins
    counts = np.append(np.bincount(extra, minlength=40)[:40], (extra >= 40).sum())
    assert stats.chisquare(counts, N * np.append(expected, 1 - expected.sum())).pvalue > 1e-3
    # the expected sequence length (with the final symbol) is q + 13
    assert extra.mean() + TASK_2C.q + 4 == pytest.approx(TASK_2C.q + 13, abs=5 * 9.5 / math.sqrt(N))


def test_truncated_geometric_reaches_and_respects_its_cap() -> None:
    draws = truncated_geometric(20_000, 3, seeded(0)).numpy()
    pmf = 0.9 ** np.arange(4)
    assert draws.min() == 0 and draws.max() == 3
    assert stats.chisquare(np.bincount(draws), 20_000 * pmf / pmf.sum()).pvalue > 1e-3


def test_2c_memory_lag_bounds_the_lag(draws: dict) -> None:
    batch = draws[str(TASK_2C)]
    assert TASK_2C.memory_lag == TASK_2C.q + MAX_EXTRA + 1
    lags = batch.lengths - 2  # step 1 to the trigger
    assert int(lags.min()) == TASK_2C.q + 1 and int(lags.max()) <= TASK_2C.memory_lag


def test_2c_baseline_the_class_is_independent_of_the_step(draws: dict) -> None:
    """The best memoryless prediction is the class frequency at the trigger's step: 1/2 at every
    step (Monte Carlo), so ln 2."""
    batch = draws[str(TASK_2C)]
    label = batch.targets[torch.arange(N), batch.lengths - 1]
    assert stats.binomtest(int(label.sum()), N, 0.5).pvalue > 1e-3
    short = batch.lengths < int(batch.lengths.float().median())
    table = [[int((short & (label == c)).sum()), int((~short & (label == c)).sum())] for c in (0, 1)]
    assert stats.chi2_contingency(table).pvalue > 1e-3
    assert TASK_2C.baseline_loss() == math.log(2)


def test_2c_criterion_is_abs_02_on_both_outputs() -> None:
    batch = TASK_2C.sample(3, seeded(1))
    outputs = outputs_with(batch, batch.mask, torch.tensor([0.82, 0.78, 0.1]), 2)
    metrics = TASK_2C.metrics(outputs, batch)
    assert metrics["error_rate"] == pytest.approx(2 / 3) and metrics["accuracy"] == pytest.approx(2 / 3)
    assert TASK_2C.sequence_correct(outputs, batch).tolist() == [True, False, False]
    assert not TASK_2C.is_solved(metrics)


def test_2c_same_seed_same_batch_and_no_global_rng() -> None:
    assert_seeded(TASK_2C)


# -- shared --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "params", "field"),
    [
        (LongLagTask, {"p": 1}, "p"),
        (LongLagTask, {"p": 10.0}, "p"),
        (LongLagTask, {"variant": "2c"}, "variant"),
        (VeryLongLagTask, {"q": -1}, "q"),
        (VeryLongLagTask, {"p": 0}, "p"),
        (VeryLongLagTask, {"q": "100"}, "q"),
    ],
)
def test_invalid_parameters(cls: type, params: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}=") as info:
        cls(**params)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("task", [TASK_2A, TASK_2B, TASK_2C], ids=str)
def test_make_task_and_describe(task: LongLagTask | VeryLongLagTask) -> None:
    assert make_task(task.name, **task.params()) == task
    text = task.describe(seeded(5))
    assert text == task.describe(seeded(5)) and text.startswith(str(task))
    batch = task.sample(1, seeded(5))
    answer = "xy"[int(batch.targets[0, batch.lengths[0] - 1]) - (P - 1 if task.name == "long_lag" else 0)]
    assert f"{answer}\n" in text + "\n" and str(task.memory_lag) in text


@pytest.mark.parametrize(
    ("argv", "task"),
    [
        (["long_lag", "--p", "12", "--variant", "2b"], LongLagTask(p=12, variant="2b")),
        (["very_long_lag", "--q", "50", "--p", "50"], VeryLongLagTask(q=50, p=50)),
    ],
)
def test_cli_shows_an_example(capsys: pytest.CaptureFixture[str], argv: list[str], task: object) -> None:
    assert main(["tasks", "show", *argv, "--seed", "4"]) == 0
    assert capsys.readouterr().out == task.describe(seeded(4)) + "\n"
