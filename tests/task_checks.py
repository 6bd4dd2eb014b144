"""Checks shared by the tests of tasks that the generic contract tests (test_tasks_base.py) cannot
take, e.g. because their batches are as long as their longest sequence."""

from __future__ import annotations

import torch

from tasks import Task


def assert_seeded(task: Task) -> None:
    """The same generator seed gives the same batch whatever the global RNG; another seed another."""
    torch.manual_seed(0)
    first = task.sample(32, torch.Generator().manual_seed(3))
    torch.manual_seed(1)
    again = task.sample(32, torch.Generator().manual_seed(3))
    for name in ("inputs", "targets", "mask", "lengths"):
        assert torch.equal(getattr(first, name), getattr(again, name))
    other = task.sample(32, torch.Generator().manual_seed(4))
    assert first.inputs.shape != other.inputs.shape or not torch.equal(first.inputs, other.inputs)
