"""tasks/selective_copy.py: the selective copying task of Gu & Dao 2023."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from tasks import SelectiveCopyTask


@pytest.fixture(
    params=[SelectiveCopyTask(length=30), SelectiveCopyTask(length=5, n_copy=5, n_symbols=3)], ids=str
)
def task(request: pytest.FixtureRequest) -> SelectiveCopyTask:
    return request.param


def draw(task: SelectiveCopyTask, n: int = 256, seed: int = 0):
    batch = task.sample(n, torch.Generator().manual_seed(seed))
    return batch, batch.inputs.argmax(-1)


def test_layout(task: SelectiveCopyTask) -> None:
    batch, tokens = draw(task)
    data, delimiter = tokens[:, : task.length], task.n_symbols + 1
    assert batch.seq_len == task.length + task.n_copy
    assert (batch.inputs.sum(-1) == 1).all()
    assert ((data != 0).sum(1) == task.n_copy).all()  # exactly n_copy symbols among blanks
    assert (data <= task.n_symbols).all()
    assert (tokens[:, task.length :] == delimiter).all()
    assert (batch.mask[:, task.length :]).all() and not batch.mask[:, : task.length].any()


def test_targets_are_the_symbols_in_order(task: SelectiveCopyTask) -> None:
    batch, tokens = draw(task)
    data = tokens[:, : task.length]
    # boolean indexing walks each row's non-blank symbols in order
    expected = data[data != 0].reshape(len(data), task.n_copy)
    assert torch.equal(batch.targets[:, task.length :], expected)


def test_positions_cover_the_data_region_uniformly() -> None:
    task = SelectiveCopyTask(length=40, n_copy=8)
    _, tokens = draw(task, n=10_000, seed=3)
    occupied = (tokens[:, : task.length] != 0).sum(0)
    assert (occupied > 0).all()
    assert stats.chisquare(occupied.numpy()).pvalue > 1e-3
    # and the symbols themselves are uniform, repeats allowed (n_copy may exceed n_symbols)
    symbols = tokens[:, : task.length][tokens[:, : task.length] != 0]
    counts = torch.bincount(symbols, minlength=task.n_symbols + 1)[1:]
    assert stats.chisquare(counts.numpy()).pvalue > 1e-3


def test_defaults_copy_more_symbols_than_the_alphabet() -> None:
    task = SelectiveCopyTask(length=64)
    assert task.n_copy > task.n_symbols
    batch, _ = draw(task, n=4)
    assert batch.mask.sum() == 4 * task.n_copy


def test_memory_lag_is_reached_when_symbols_lead(task: SelectiveCopyTask) -> None:
    batch, tokens = draw(task, n=4000)
    positions = (tokens[:, : task.length] != 0).nonzero()[:, 1].reshape(len(tokens), task.n_copy)
    lags = task.length + torch.arange(task.n_copy) - positions
    assert int(lags.max()) == task.memory_lag
    assert (task.reference_steps(batch) == task.length).all()


def test_baseline_is_chance_over_symbols() -> None:
    assert SelectiveCopyTask(length=100, n_symbols=8).baseline_loss() == pytest.approx(math.log(8))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"length": 15}, "length"),  # 16 symbols need 16 positions
        ({"length": 0, "n_copy": 1}, "length"),
        ({"length": 20, "n_copy": 0}, "n_copy"),
        ({"length": 20, "n_symbols": 1}, "n_symbols"),
        ({"length": 20.5}, "length"),
    ],
)
def test_invalid_parameters(params: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}="):
        SelectiveCopyTask(**params)


def test_describe_shows_unscored_targets_empty() -> None:
    text = SelectiveCopyTask(length=20, n_copy=4).describe(torch.Generator().manual_seed(0))
    target_line = text.splitlines()[2]
    assert len(target_line.split(":", 1)[1].split()) == 4
    assert "empty target = not scored" in text.splitlines()[0]
