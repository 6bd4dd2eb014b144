"""The contract every task shares (tasks/base.py, tasks/__init__.py): registry,
shapes, dtypes, masks, determinism, errors, scoring, the memoryless baseline, numpy
scalars and the memory bound."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import psutil
import pytest
import torch

import tasks
from tasks import Batch, Task, make_task, task_names
from tasks.base import MEMORY_ENV, check_fields, memory_limit, render_columns, step_scores

TASKS = [
    tasks.CopyTask(delay=20),
    tasks.CopyTask(delay=3, n_copy=4, n_symbols=3),
    tasks.SelectiveCopyTask(length=40),
    tasks.SelectiveCopyTask(length=12, n_copy=5, n_symbols=12),
    tasks.AddingTask(length=50),
    tasks.AddingTask(length=100, variant="hochreiter1997"),
    tasks.MultiplicationTask(length=60),
    tasks.TemporalOrderTask(),
    tasks.TemporalOrderTask(length=40, n_markers=3),
    tasks.AssociativeRecallTask(n_pairs=6),
    tasks.AssociativeRecallTask(n_pairs=8, n_keys=10, n_values=5, n_queries=4),
    tasks.LongLagTask(p=12),
    tasks.LongLagTask(p=20, variant="2b"),
    tasks.TwoSequenceTask(length=30),
    tasks.TwoSequenceTask(length=20, n_informative=1, variant="3b"),
]
N_BASELINE = 10_000


@pytest.fixture(params=TASKS, ids=str)
def task(request: pytest.FixtureRequest) -> Task:
    return request.param


@pytest.fixture
def batch(task: Task) -> Batch:
    return task.sample(64, torch.Generator().manual_seed(0))


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def perfect_outputs(task: Task, batch: Batch) -> torch.Tensor:
    if task.kind == "classification":
        return 20.0 * torch.nn.functional.one_hot(batch.targets, task.output_size).float()
    return batch.targets[..., None].clone()


def memoryless_outputs(task: Task, batch: Batch) -> torch.Tensor:
    """The best predictor that sees only the time step, fitted on ``batch``:
    per step, the empirical class distribution (or the mean) of the scored
    targets.  It knows nothing of the task's formulas, so it checks them."""
    weight = batch.mask.float()
    if task.kind == "classification":
        step = torch.arange(batch.seq_len).expand_as(batch.mask)[batch.mask]
        flat = step * task.output_size + batch.targets[batch.mask]
        counts = torch.bincount(flat, minlength=batch.seq_len * task.output_size).view(batch.seq_len, -1)
        probs = counts / counts.sum(-1, keepdim=True).clamp_min(1)
        per_step = probs.clamp_min(1e-30).log()
    else:
        per_step = ((batch.targets * weight).sum(0) / weight.sum(0).clamp_min(1.0))[:, None]
    return per_step.expand(batch.batch_size, -1, -1)


# -- registry ------------------------------------------------------------------------------------


def test_task_names_are_the_public_ten() -> None:
    assert task_names() == [
        "copy",
        "selective_copy",
        "adding",
        "multiplication",
        "temporal_order",
        "associative_recall",
        "embedded_reber",
        "long_lag",
        "very_long_lag",
        "two_sequence",
    ]


def test_make_task_rebuilds_every_task_from_its_params(task: Task) -> None:
    rebuilt = make_task(task.name, **task.params())
    assert rebuilt == task and type(rebuilt) is type(task)


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("nope", {}, "name"),
        ("copy", {"delay": 5, "lenght": 3}, "lenght"),
        ("copy", {}, "delay"),
        ("adding", {"length": 50, "variant": "le2015"}, "variant"),
        ("associative_recall", {}, "n_pairs"),
    ],
)
def test_make_task_rejects_bad_names_and_params(name: str, params: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field) as info:
        make_task(name, **params)
    assert "\n" not in str(info.value)


@dataclasses.dataclass
class Fields:
    needed: int
    optional: int = 0
    listed: list = dataclasses.field(default_factory=list)
    derived: int = dataclasses.field(init=False, default=0)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"needed": 1, "extra": 2},
            "extra=2 is invalid: Fields has no such field (its fields: needed, optional, listed)",
        ),
        ({"needed": 1, "derived": 2}, "derived=2 is invalid: Fields has no such field"),  # not an init field
        ({"optional": 1}, "needed is missing: Fields requires it (its fields: needed, optional, listed)"),
    ],
)
def test_check_fields_names_the_unknown_or_missing_field(given: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        check_fields("Fields", Fields, given)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_check_fields_accepts_the_fields_and_spells_them_as_asked() -> None:
    check_fields("Fields", Fields, {"needed": 1})
    check_fields("Fields", Fields, {"needed": 1, "optional": 2, "listed": []})
    with pytest.raises(
        ValueError, match=r"^--needed is missing: Fields requires it \(its fields: --needed, "
    ):
        check_fields("Fields", Fields, {}, spell=lambda name: f"--{name}")


# -- the Batch contract ----------------------------------------------------------------------------


def test_shapes_and_dtypes(task: Task, batch: Batch) -> None:
    b, length = batch.batch_size, batch.seq_len
    assert b == 64
    assert batch.inputs.shape == (b, length, task.input_size) and batch.inputs.dtype == torch.float32
    assert batch.targets.shape == (b, length)
    assert batch.targets.dtype == (torch.long if task.kind == "classification" else torch.float32)
    assert batch.mask.shape == (b, length) and batch.mask.dtype == torch.bool
    assert batch.lengths.shape == (b,) and batch.lengths.dtype == torch.long
    if task.kind == "regression":
        assert task.output_size == 1


def test_mask_and_padding(task: Task, batch: Batch) -> None:
    padding = torch.arange(batch.seq_len) >= batch.lengths[:, None]
    assert int(batch.lengths.max()) <= batch.seq_len and int(batch.lengths.min()) >= 1
    assert not (batch.mask & padding).any()
    assert (batch.inputs[padding] == 0).all()
    assert batch.mask.any(dim=1).all()
    if task.kind == "classification":
        assert int(batch.targets.min()) >= 0 and int(batch.targets.max()) < task.output_size


def test_same_seed_same_batch_other_seed_other_batch(task: Task) -> None:
    first, again, other = (task.sample(16, seeded(s)) for s in (7, 7, 8))
    for name in ("inputs", "targets", "mask", "lengths"):
        assert torch.equal(getattr(first, name), getattr(again, name))
    assert not torch.equal(first.inputs, other.inputs)


def test_sampling_ignores_the_global_rng(task: Task) -> None:
    """Every random call takes the generator: the global seed changes nothing."""
    torch.manual_seed(0)
    left = task.sample(4, seeded(3))
    torch.manual_seed(1)
    right = task.sample(4, seeded(3))
    assert torch.equal(left.inputs, right.inputs) and torch.equal(left.targets, right.targets)


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True, "8"])
def test_bad_batch_size(task: Task, batch_size: object) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        task.sample(batch_size)  # type: ignore[arg-type]


def test_tasks_are_frozen(task: Task) -> None:
    field = dataclasses.fields(task)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(task, field, 5)


# -- scoring -------------------------------------------------------------------------------------


def test_loss_is_the_masked_mean(task: Task, batch: Batch) -> None:
    outputs = torch.randn(batch.batch_size, batch.seq_len, task.output_size, generator=seeded(1))
    if task.kind == "classification":
        logp = outputs.log_softmax(-1).gather(2, batch.targets[..., None])[..., 0]
        expected = -logp[batch.mask].mean()
    else:
        expected = ((outputs[..., 0] - batch.targets)[batch.mask] ** 2).mean()
    assert float(task.loss(outputs, batch)) == pytest.approx(float(expected), rel=1e-5)


def test_perfect_outputs_solve_the_task(task: Task, batch: Batch) -> None:
    metrics = task.metrics(perfect_outputs(task, batch), batch)
    assert {"loss", "loss_ratio", "accuracy", "error_rate"} <= set(metrics)
    assert metrics["accuracy"] == 1.0 and metrics["error_rate"] == 0.0
    assert metrics["loss_ratio"] == pytest.approx(metrics["loss"] / task.baseline_loss())
    assert metrics["loss_ratio"] < 0.01
    assert task.is_solved(metrics)


def test_baseline_matches_the_best_memoryless_predictor(task: Task) -> None:
    # regression losses are noisier: 40k sequences resolve e.g. 19/480 from 1/24 at > 8 sigma
    n = N_BASELINE if task.kind == "classification" else 4 * N_BASELINE
    batch = task.sample(n, seeded(11))
    outputs = memoryless_outputs(task, batch)
    # the loss of each scored step, computed here rather than by task.loss
    rows, steps = batch.mask.nonzero(as_tuple=True)
    if task.kind == "classification":
        losses = -outputs[rows, steps, batch.targets[rows, steps]]
    else:
        losses = (outputs[rows, steps, 0] - batch.targets[rows, steps]) ** 2
    per_sequence = losses.view(n, -1).mean(1)  # every sequence has as many scored steps
    standard_error = float(per_sequence.std()) / math.sqrt(n)
    # fitting per-step frequencies in-sample lowers the loss by ~(K-1)/2n per step
    scored = batch.mask.sum(0)
    fit_bias = (
        float((task.output_size - 1) / (2 * scored[scored > 0]).min()) if task.kind == "classification" else 0
    )
    assert float(per_sequence.mean()) == pytest.approx(
        task.baseline_loss(), abs=5 * standard_error + 2 * fit_bias
    )
    few = Batch(*(t[:256] for t in (batch.inputs, batch.targets, batch.mask, batch.lengths)))
    assert not task.is_solved(task.metrics(outputs[:256], few))


def test_reference_steps_are_scored_steps(task: Task, batch: Batch) -> None:
    steps = task.reference_steps(batch)
    assert steps.shape == (batch.batch_size,) and steps.dtype == torch.long
    assert batch.mask[torch.arange(batch.batch_size), steps].all()


def test_memory_lag_is_within_the_sequence(task: Task, batch: Batch) -> None:
    assert 1 <= task.memory_lag < batch.seq_len


def test_describe_renders_one_example_deterministically(task: Task) -> None:
    text = task.describe(seeded(5))
    assert text == task.describe(seeded(5))
    assert text.startswith(str(task)) and len(text.splitlines()) >= 2
    assert str(task.memory_lag) in text


# -- helpers in tasks.base -------------------------------------------------------------------------


def test_step_scores_counts_steps_and_sequences() -> None:
    where = torch.tensor([[True, True, False], [False, True, True], [True, False, False]])
    correct = torch.tensor([[True, False, False], [False, True, True], [True, True, False]])
    scores = step_scores(correct, where)
    # 5 scored steps, one wrong (row 0, step 1); the unscored wrong steps do not count
    assert scores["accuracy"] == pytest.approx(4 / 5)
    assert scores["error_rate"] == pytest.approx(1 / 3)


def test_render_columns_aligns_and_folds_runs() -> None:
    text = render_columns(
        {"in": ["7", "_", "_", "_", "_", "_", "10"], "out": ["", "_", "_", "_", "_", "_", "7"]}
    )
    first, second = text.splitlines()
    assert "_×5" in first and "_×5" in second
    assert first.index("_×5") == second.index("_×5") and first.index("10") == second.index("7")


# -- numpy scalars and the memory bound ---------------------------------------------------------------


def test_numpy_scalars_are_accepted_and_stored_as_python_numbers() -> None:
    task = tasks.CopyTask(delay=np.int64(10), n_copy=np.int32(4))
    assert task == tasks.CopyTask(delay=10, n_copy=4) and str(task) == str(tasks.CopyTask(delay=10, n_copy=4))
    assert type(task.delay) is int and type(task.n_copy) is int
    assert make_task("adding", length=np.int64(20), variant=np.str_("hochreiter1997")).params() == {
        "length": 20,
        "variant": "hochreiter1997",
    }
    batch = task.sample(np.int64(3), seeded(0))
    assert torch.equal(batch.inputs, task.sample(3, seeded(0)).inputs)


def test_min_batch_bytes_is_a_lower_bound_of_a_batch(task: Task, batch: Batch) -> None:
    stored = sum(
        t.numel() * t.element_size() for t in (batch.inputs, batch.targets, batch.mask, batch.lengths)
    )
    assert 0 < task.min_batch_bytes(batch.batch_size) <= stored


@pytest.mark.parametrize(
    ("text", "limit"), [("1000", 1000), ("8G", 8 * 2**30), ("512MiB", 512 * 2**20), ("1.5 kb", 1536)]
)
def test_memory_limit_reads_the_environment(monkeypatch: pytest.MonkeyPatch, text: str, limit: int) -> None:
    monkeypatch.setenv(MEMORY_ENV, text)
    assert memory_limit() == limit


def test_memory_limit_defaults_to_the_memory_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    available = psutil.virtual_memory().available  # an independent reading of /proc/meminfo
    assert 0.5 * available < memory_limit() < 1.5 * available


def test_a_bad_memory_limit_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MEMORY_ENV, "lots")
    with pytest.raises(ValueError, match=rf"^{MEMORY_ENV}='lots' is invalid: [^\n]+$"):
        memory_limit()


def test_a_batch_over_the_bound_is_refused_before_sampling(monkeypatch: pytest.MonkeyPatch) -> None:
    task = tasks.AddingTask(length=100)
    monkeypatch.setenv(MEMORY_ENV, str(task.min_batch_bytes(10)))
    assert task.sample(10).batch_size == 10
    with pytest.raises(
        ValueError, match=r"^batch_size=11 is invalid: a batch of adding\(length=100.*\$SEQMEM"
    ):
        task.sample(11)


def test_a_task_too_long_for_this_machine_is_one_line_not_an_allocator_crash() -> None:
    # 10^12 steps of 10 one-hot floats: ~40 TB for a single example
    with pytest.raises(
        ValueError, match=r"^batch_size=1 is invalid: .*TiB, more than the memory bound"
    ) as caught:
        tasks.CopyTask(delay=10**12).describe()
    assert "\n" not in str(caught.value)
