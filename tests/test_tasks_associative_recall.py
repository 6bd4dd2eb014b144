"""tasks/associative_recall.py: key-value recall (Ba et al. 2016; multi-query form)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from tasks import AssociativeRecallTask, Batch

N = 10_000
TASKS = [
    AssociativeRecallTask(n_pairs=4),
    AssociativeRecallTask(n_pairs=6, n_keys=8, n_values=5, n_queries=3),
]


@pytest.fixture(scope="module")
def draws() -> dict[str, Batch]:
    return {str(t): t.sample(N, torch.Generator().manual_seed(8)) for t in TASKS}


@pytest.fixture(params=TASKS, ids=str)
def task(request: pytest.FixtureRequest) -> AssociativeRecallTask:
    return request.param


def parse(task: AssociativeRecallTask, batch: Batch):
    tokens = batch.inputs.argmax(-1)
    n = 2 * task.n_pairs
    keys, values = tokens[:, 0:n:2], tokens[:, 1:n:2] - task.n_keys
    return tokens, keys, values, tokens[:, n + 1 :]


def test_layout(draws: dict, task: AssociativeRecallTask) -> None:
    batch = draws[str(task)]
    tokens, keys, values, queries = parse(task, batch)
    assert batch.seq_len == 2 * task.n_pairs + 1 + task.n_queries
    assert (batch.inputs.sum(-1) == 1).all()
    assert ((keys >= 0) & (keys < task.n_keys)).all()
    assert ((values >= 0) & (values < task.n_values)).all()
    assert (tokens[:, 2 * task.n_pairs] == task.n_keys + task.n_values).all()
    assert (keys.sort(1).values.diff(dim=1) > 0).all()  # distinct keys
    assert (queries.sort(1).values.diff(dim=1) > 0).all()  # distinct queries
    assert batch.mask[:, -task.n_queries :].all() and batch.mask.sum() == N * task.n_queries


def test_answers_recomputed_from_the_pairs(draws: dict, task: AssociativeRecallTask) -> None:
    batch = draws[str(task)]
    _, keys, values, queries = parse(task, batch)
    lookup = torch.full((N, task.n_keys), -1)
    lookup.scatter_(1, keys, values)
    answers = lookup.gather(1, queries)
    assert (answers >= 0).all()  # every query was stored
    assert torch.equal(batch.targets[:, -task.n_queries :], answers)


def test_keys_values_and_queried_pairs_uniform(draws: dict, task: AssociativeRecallTask) -> None:
    _, keys, values, queries = parse(task, draws[str(task)])
    assert stats.chisquare(torch.bincount(keys.flatten(), minlength=task.n_keys).numpy()).pvalue > 1e-3
    assert stats.chisquare(torch.bincount(values.flatten(), minlength=task.n_values).numpy()).pvalue > 1e-3
    # which of the shown pairs gets asked: every slot equally often
    slot = (keys[:, None, :] == queries[:, :, None]).float().argmax(-1)
    assert stats.chisquare(torch.bincount(slot.flatten(), minlength=task.n_pairs).numpy()).pvalue > 1e-3


def test_memory_lag(draws: dict, task: AssociativeRecallTask) -> None:
    batch = draws[str(task)]
    _, keys, _, queries = parse(task, batch)
    slot = (keys[:, None, :] == queries[:, :, None]).float().argmax(-1)  # (N, queries)
    query_steps = 2 * task.n_pairs + 1 + torch.arange(task.n_queries)
    assert int((query_steps - 2 * slot).max()) == task.memory_lag
    assert (task.reference_steps(batch) == batch.seq_len - 1).all()


def test_accuracy_counts_queries() -> None:
    task = TASKS[1]
    batch = task.sample(4, torch.Generator().manual_seed(0))
    outputs = 10.0 * torch.nn.functional.one_hot(batch.targets, task.n_values).float()
    outputs[2, -1] = outputs[2, -1].roll(1)  # one answer of sequence 2 wrong
    metrics = task.metrics(outputs, batch)
    assert metrics["accuracy"] == pytest.approx(1 - 1 / (4 * task.n_queries))
    assert metrics["error_rate"] == pytest.approx(1 / 4)
    assert not task.is_solved(metrics) and task.is_solved({**metrics, "accuracy": 0.99})


def test_baseline_is_log_values() -> None:
    assert AssociativeRecallTask(n_pairs=3, n_values=7).baseline_loss() == pytest.approx(math.log(7))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"n_pairs": 0}, "n_pairs"),
        ({"n_pairs": 5, "n_keys": 4}, "n_keys"),
        ({"n_pairs": 5, "n_values": 1}, "n_values"),
        ({"n_pairs": 5, "n_queries": 0}, "n_queries"),
        ({"n_pairs": 5, "n_queries": 6}, "n_queries"),
        ({"n_pairs": "5"}, "n_pairs"),
    ],
)
def test_invalid_parameters(params: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}="):
        AssociativeRecallTask(**params)


def test_describe_reads_like_ba_et_al() -> None:
    task = AssociativeRecallTask(n_pairs=4)
    text = task.describe(torch.Generator().manual_seed(1))
    batch = task.sample(1, torch.Generator().manual_seed(1))
    tokens, keys, values, queries = parse(task, batch)
    pairs = " ".join(f"{chr(97 + k)} {v}" for k, v in zip(keys[0].tolist(), values[0].tolist(), strict=True))
    assert f"{pairs} ? {chr(97 + int(queries[0, 0]))}" in text
    assert text.splitlines()[2].split()[-1] == str(int(batch.targets[0, -1]))
