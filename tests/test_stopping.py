"""seqmem/stopping.py: each stopping rule alone, their combination, and the 1997 paper's rule on
the stream of training sequences (how train() uses them: tests/test_train.py)."""

import math

import numpy as np
import pytest
import torch

import tasks
from seqmem.stopping import (
    Budget,
    Divergence,
    HochreiterStop,
    RecentColumns,
    SolvedEvaluations,
    Stopping,
    TrainingStep,
)
from tasks.two_sequence import MAX_ABS_ERROR


def step_record(step: int, loss: float = 1.0, grad_norm: float = 1.0) -> TrainingStep:
    return TrainingStep(step, loss, grad_norm, outputs=torch.zeros(1, 1, 1), batch=None)


def test_budget_is_spent_at_its_last_step():
    budget = Budget(total_steps=3)
    spent = []
    for step in range(1, 4):
        budget.after_step(step_record(step))
        spent.append(budget.triggered)
    assert spent == [False, False, True] and budget.status == "budget_exhausted"


@pytest.mark.parametrize(
    ("loss", "grad_norm", "diverged"),
    [
        (5.0, 1e30, False),
        (math.nan, 1.0, True),
        (1.0, math.inf, True),
        (math.inf, 1.0, True),
        (10.0, 1.0, False),  # exactly the bound is still allowed
        (10.000001, 1.0, True),
    ],
)
def test_divergence_is_a_non_finite_value_or_a_loss_above_the_bound(loss, grad_norm, diverged):
    rule = Divergence(max_loss=10.0)
    rule.after_step(step_record(1))
    assert not rule.triggered and rule.step is None
    rule.after_step(step_record(2, loss, grad_norm))
    assert (rule.triggered, rule.step) == ((True, 2) if diverged else (False, None))


def test_solved_needs_patience_consecutive_evaluations_and_stays_solved():
    rule = SolvedEvaluations(patience=2)
    held = []
    for solved in (True, False, True, True, False):
        rule.after_evaluation(solved)
        held.append(rule.triggered)
    assert held == [False, False, False, True, True] and rule.status == "solved"


@pytest.mark.parametrize(
    ("diverged", "solved", "spent", "stop_when_solved", "done", "status"),
    [
        (False, False, False, True, False, "budget_exhausted"),
        (False, True, False, True, True, "solved"),
        (False, True, False, False, False, "solved"),  # trains on, to the budget
        (False, True, True, False, True, "solved"),
        (False, False, True, True, True, "budget_exhausted"),
        (True, True, False, False, True, "diverged"),  # solved, then diverged
    ],
)
def test_stopping_combines_the_rules(diverged, solved, spent, stop_when_solved, done, status):
    stopping = Stopping(Divergence(), SolvedEvaluations(), Budget(10), stop_when_solved)
    for rule, triggered in (
        (stopping.divergence, diverged),
        (stopping.solved, solved),
        (stopping.budget, spent),
    ):
        rule.triggered = triggered
    assert (stopping.done, stopping.status) == (done, status)


def test_a_diverged_step_is_judged_by_no_other_rule():
    stopping = Stopping(Divergence(max_loss=1.0), SolvedEvaluations(), Budget(1))
    stopping.after_step(step_record(1, loss=2.0))
    assert stopping.divergence.triggered and not stopping.budget.triggered
    assert (stopping.done, stopping.status) == (True, "diverged")


def outputs_off_by(batch: tasks.Batch, offsets: list[float]) -> torch.Tensor:
    """Regression outputs that miss each sequence's target by the given offset."""
    return (batch.targets + torch.tensor(offsets)[:, None])[..., None]


def test_hochreiter_rule_needs_a_full_window_of_correct_sequences_and_a_low_mean_loss():
    task = tasks.AddingTask(length=20, variant="hochreiter1997")
    rule = HochreiterStop(task, window=4, max_loss=0.03**2)
    batches = [task.sample(2, torch.Generator().manual_seed(i)) for i in range(5)]
    # window not full yet; then full and correct; a wrong one (0.05) enters; two batches push it out
    offsets = [[0.01, -0.02], [0.0, 0.03], [0.05, 0.0], [0.0, 0.0], [0.01, 0.0]]
    held = [rule.update(outputs_off_by(b, o), b) for b, o in zip(batches, offsets, strict=True)]
    assert held == [False, True, False, False, True]
    # all correct, but the mean squared error (0.035^2) is above the loss bound
    loud = HochreiterStop(task, window=2, max_loss=0.03**2)
    assert not loud.update(outputs_off_by(batches[0], [0.035, -0.035]), batches[0])


@pytest.mark.parametrize("variant", ["3a", "3b", "3c"])
def test_hochreiter_rule_gives_the_task_all_its_metrics_over_the_window(variant):
    """The two-sequence problem's ST2 needs abs_error besides error_rate: the rule passes the
    task's full metrics, averaged over the window's sequences."""
    task = tasks.TwoSequenceTask(length=20, variant=variant)
    bound = MAX_ABS_ERROR[variant]  # on the mean absolute error; every offset here is classified right
    batches = [task.sample(1, torch.Generator().manual_seed(i)) for i in range(8)]

    def off_by(i, offset):
        return ((task.clean_targets(batches[i]) + offset) * batches[i].mask)[..., None]

    rule = HochreiterStop(task, window=6, max_loss=math.inf)
    offsets = [0.0, 0.0, 1.2 * bound, 0.0, 0.0, 0.0, 0.0, 0.0]
    held = [rule.update(off_by(i, offset), batches[i]) for i, offset in enumerate(offsets)]
    assert held == [False] * 5 + [True, True, True]  # a window's mean: 0.2 x bound
    strict = HochreiterStop(task, window=2, max_loss=math.inf)
    assert not strict.update(off_by(2, 1.5 * bound), batches[2])
    assert not strict.update(off_by(3, 1.5 * bound), batches[3])


@pytest.mark.parametrize("window, sizes", [(5, [1]), (7, [1, 2, 3]), (4, [6]), (1, [2, 1])])
def test_hochreiter_rule_judges_exactly_the_window_a_recomputation_from_the_whole_stream_gives(window, sizes):
    """The window kept step by step equals the one recomputed from every sequence seen so far: the
    last ``window`` sequences' loss and error rate, and the task's other metrics weighted over
    the fewest last batches that cover the window."""
    task = tasks.AddingTask(length=20, variant="hochreiter1997")
    rule = HochreiterStop(task, window=window, max_loss=math.inf)
    generator = torch.Generator().manual_seed(0)
    losses, correct, batches = [], [], []
    for step in range(15 * window):  # long enough to move RecentColumns' buffer back many times
        batch = task.sample(sizes[step % len(sizes)], generator)
        outputs = outputs_off_by(batch, (0.05 * torch.randn(batch.batch_size, generator=generator)).tolist())
        rule.add(outputs, batch)
        losses += ((outputs[..., 0] - batch.targets)[batch.mask] ** 2).tolist()  # one scored step each
        correct += task.sequence_correct(outputs, batch).tolist()
        batches.append((batch.batch_size, task.metrics(outputs, batch)))
        if len(losses) < window:
            assert rule.window_metrics() is None
            continue
        cover = next(k for k in range(1, len(batches) + 1) if sum(n for n, _ in batches[-k:]) >= window)
        weights = np.array([n for n, _ in batches[-cover:]], dtype=float)
        expected = {
            name: float(np.dot(weights, [m[name] for _, m in batches[-cover:]]) / weights.sum())
            for name in batches[-1][1]
        }
        expected.update(
            loss=float(np.mean(losses[-window:])),
            loss_ratio=float(np.mean(losses[-window:])) / task.baseline_loss(),
            error_rate=1.0 - sum(correct[-window:]) / window,
        )
        assert rule.window_metrics() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("capacity, sizes", [(5, [1]), (5, [2, 3]), (3, [4]), (1, [1, 2])])
def test_recent_columns_keeps_the_last_capacity_columns_oldest_first(capacity, sizes):
    recent = RecentColumns(capacity, 2)
    added: list[float] = []
    for n in sizes * 10:
        new = np.arange(len(added), len(added) + n, dtype=float)
        recent.extend(np.stack([new, -new]))
        added += new.tolist()
        kept = added[-capacity:]
        np.testing.assert_array_equal(recent.values, [kept, [-x for x in kept]])
    recent.drop_oldest()
    np.testing.assert_array_equal(recent.values[0], added[-capacity + 1 :] if capacity > 1 else [])
