"""tasks/two_sequence.py: noise and signal on the same channel (Hochreiter & Schmidhuber 1997,
experiment 3: Bengio et al.'s 2-sequence problem 3a, with noisy informative elements 3b, with noisy
real-valued targets 3c)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats
from task_checks import assert_seeded

from seqmem.cli import main
from tasks import Batch, TwoSequenceTask, make_task

N = 20_000
TASKS = [
    TwoSequenceTask(length=40),
    TwoSequenceTask(length=40, n_informative=1, variant="3b"),
    TwoSequenceTask(length=40, variant="3c"),
]
NOISE = stats.norm(scale=math.sqrt(0.2))


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def draws() -> dict[str, Batch]:
    return {str(t): t.sample(N, seeded(3)) for t in TASKS}


@pytest.fixture(params=TASKS, ids=str)
def task(request: pytest.FixtureRequest) -> TwoSequenceTask:
    return request.param


def ends(batch: Batch) -> torch.Tensor:
    return batch.targets[torch.arange(batch.batch_size), batch.lengths - 1]


def class_one(task: TwoSequenceTask, batch: Batch) -> torch.Tensor:
    """Class 1 by the target: 1.0 in 3a/3b, 0.2 (plus noise of sd 0.32) in 3c."""
    return ends(batch) > 0.5 if task.variant != "3c" else batch.inputs[:, 0, 0] > 0


def test_lengths_uniform_and_padding(draws: dict, task: TwoSequenceTask) -> None:
    batch = draws[str(task)]
    counts = torch.bincount(batch.lengths - task.length)
    assert len(counts) == task.length // 10 + 1 and stats.chisquare(counts.numpy()).pvalue > 1e-3
    inside = torch.arange(batch.seq_len) < batch.lengths[:, None]
    assert batch.seq_len == task.max_len and (batch.inputs[~inside] == 0).all()
    assert torch.equal(batch.mask, torch.nn.functional.one_hot(batch.lengths - 1, batch.seq_len).bool())
    assert task.memory_lag == int((batch.lengths - 1).max()) == task.length + task.length // 10 - 1


def test_classes_are_equally_likely(draws: dict, task: TwoSequenceTask) -> None:
    assert stats.binomtest(int(class_one(task, draws[str(task)]).sum()), N, 0.5).pvalue > 1e-3


def test_informative_elements(draws: dict, task: TwoSequenceTask) -> None:
    """+1 for class 1 and -1 for class 2; in 3b perturbed by N(0, 0.2)."""
    batch = draws[str(task)]
    sign = torch.where(class_one(task, batch), 1.0, -1.0)[:, None]
    informative = batch.inputs[:, : task.n_informative, 0] - sign
    if task.variant == "3b":
        assert stats.kstest(informative.flatten().numpy(), NOISE.cdf).pvalue > 1e-3
    else:
        assert (informative == 0).all()


def test_later_elements_are_gaussian_noise(draws: dict, task: TwoSequenceTask) -> None:
    batch = draws[str(task)]
    steps = torch.arange(batch.seq_len)
    noise = batch.inputs[..., 0][(steps >= task.n_informative) & (steps < batch.lengths[:, None])]
    assert stats.kstest(noise[:50_000].numpy(), NOISE.cdf).pvalue > 1e-3
    # independent of the class: the same mean in both
    one = class_one(task, batch)[:, None].expand_as(batch.mask)
    inside = (steps >= task.n_informative) & (steps < batch.lengths[:, None])
    x1, x2 = batch.inputs[..., 0][inside & one], batch.inputs[..., 0][inside & ~one]
    assert stats.ttest_ind(x1.numpy(), x2.numpy()).pvalue > 1e-3


def test_targets(draws: dict, task: TwoSequenceTask) -> None:
    batch = draws[str(task)]
    one = class_one(task, batch)
    if task.variant != "3c":
        assert torch.equal(ends(batch), torch.where(one, 1.0, 0.0))
        assert torch.equal(task.clean_targets(batch), batch.targets)
        return
    clean = torch.where(one, 0.2, 0.8)
    assert torch.equal(task.clean_targets(batch)[batch.mask], clean)
    noise = (ends(batch) - clean).numpy()
    assert stats.kstest(noise, stats.norm(scale=math.sqrt(0.1)).cdf).pvalue > 1e-3


@pytest.mark.parametrize(("variant", "baseline"), [("3a", 0.25), ("3b", 0.25), ("3c", 0.3**2 + 0.1)], ids=str)
def test_baseline_is_the_variance_of_the_target(variant: str, baseline: float) -> None:
    """Closed form: the best constant is the mean 0.5.  Monte Carlo: its squared error."""
    task = TwoSequenceTask(length=20, variant=variant)
    assert task.baseline_loss() == pytest.approx(baseline)
    targets = ends(task.sample(40_000, seeded(8))).double()
    errors = (targets - targets.mean()) ** 2
    assert float(errors.mean()) == pytest.approx(baseline, abs=5 * float(errors.std()) / 200)


def test_3a_correct_below_02_and_abs_error() -> None:
    task = TASKS[0]
    batch = task.sample(4, seeded(0))
    offsets = torch.tensor([0.19, -0.21, 0.0, -0.05])
    outputs = torch.where(batch.mask, batch.targets + offsets[:, None], 7.0)[
        ..., None
    ]  # off the end: ignored
    metrics = task.metrics(outputs, batch)
    assert metrics["error_rate"] == 0.25 and metrics["accuracy"] == 0.75
    assert metrics["abs_error"] == pytest.approx(float(offsets.abs().mean()), rel=1e-5)
    assert metrics["loss"] == pytest.approx(float((offsets**2).mean()), rel=1e-4)
    assert task.sequence_correct(outputs, batch).tolist() == [True, False, True, True]


def test_3c_is_judged_against_the_noise_free_target() -> None:
    task = TASKS[2]
    batch = task.sample(4, seeded(0))
    clean = task.clean_targets(batch)
    offsets = torch.tensor([0.099, -0.11, 0.0, 0.05])
    outputs = torch.where(batch.mask, clean + offsets[:, None], 7.0)[..., None]
    metrics = task.metrics(outputs, batch)
    assert metrics["error_rate"] == 0.25
    assert metrics["abs_error"] == pytest.approx(float(offsets.abs().mean()), rel=1e-5)
    noisy = ends(batch) - clean[batch.mask] - offsets
    assert metrics["loss"] == pytest.approx(float((noisy**2).mean()), rel=1e-4)  # the loss sees the noise
    assert task.sequence_correct(outputs, batch).tolist() == [True, False, True, True]


def test_3c_the_noise_free_target_solves_it_at_the_noise_floor(draws: dict) -> None:
    task = TASKS[2]
    batch = draws[str(task)]
    metrics = task.metrics(task.clean_targets(batch)[..., None], batch)
    assert metrics["error_rate"] == 0.0 and metrics["abs_error"] == 0.0 and task.is_solved(metrics)
    assert metrics["loss"] == pytest.approx(0.1, rel=0.05)  # the target noise's variance


@pytest.mark.parametrize(
    ("variant", "error_rate", "abs_error", "solved"),
    [
        ("3a", 0.0, 0.0099, True),
        ("3a", 0.0, 0.01, False),
        ("3a", 1 / 256, 0.001, False),
        ("3b", 5 / 256, 0.039, True),
        ("3b", 6 / 256, 0.01, False),
        ("3b", 0.0, 0.04, False),
        ("3c", 0.0, 0.0149, True),
        ("3c", 0.0, 0.015, False),
        ("3c", 1 / 2560, 0.001, False),
    ],
)
def test_solved_is_the_papers_st2(variant: str, error_rate: float, abs_error: float, solved: bool) -> None:
    metrics = {"loss": 0.0, "loss_ratio": 0.0, "error_rate": error_rate, "abs_error": abs_error}
    assert TwoSequenceTask(variant=variant).is_solved(metrics) is solved


def test_3b_noise_makes_some_sequences_ambiguous() -> None:
    """With N = 1 the sign of the noisy first element errs with probability Phi(-1/sqrt(0.2)) ~ 1.3%,
    the order of the paper's 1.5% misclassified (Table 5)."""
    task = TwoSequenceTask(length=20, n_informative=1, variant="3b")
    batch = task.sample(N, seeded(4))
    flipped = int(((batch.inputs[:, 0, 0] > 0) != (ends(batch) > 0.5)).sum())
    assert stats.binomtest(flipped, N, stats.norm.cdf(-1 / math.sqrt(0.2))).pvalue > 1e-3


def test_3c_same_seed_same_batch_and_no_global_rng() -> None:
    assert_seeded(TASKS[2])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"variant": "3d"}, "variant"),
        ({"n_informative": 0}, "n_informative"),
        ({"length": 3, "n_informative": 3}, "length"),
        ({"length": 100.0}, "length"),
    ],
)
def test_invalid_parameters(params: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}=") as info:
        TwoSequenceTask(**params)
    assert "\n" not in str(info.value)


def test_make_task_and_describe(task: TwoSequenceTask) -> None:
    assert make_task("two_sequence", **task.params()) == task
    text = task.describe(seeded(6))
    assert text == task.describe(seeded(6)) and text.startswith(str(task))
    batch = task.sample(1, seeded(6))
    assert f"class {1 if bool(class_one(task, batch)[0]) else 2};" in text
    assert f"{float(ends(batch)[0]):.2f}" in text.splitlines()[-1] and str(task.memory_lag) in text
    first = batch.inputs[0, : task.n_informative, 0].tolist()
    assert all(f"{v:+.2f}" in text.splitlines()[1] for v in first)


def test_cli_shows_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["tasks", "show", "two_sequence", "--length", "30", "--n-informative", "1", "--variant", "3c"]
    assert main([*argv, "--seed", "2"]) == 0
    expected = TwoSequenceTask(length=30, n_informative=1, variant="3c").describe(seeded(2))
    assert capsys.readouterr().out == expected + "\n"
