"""Synthetic long-range memory tasks (depends only on torch).

Every task's ``baseline_loss()`` is the expected loss of the best *memoryless*
strategy: one whose output at step t depends on t alone, never on the inputs
(what Arjovsky et al. 2016 call the memoryless baseline of the copy task).

>>> from tasks import make_task
>>> task = make_task("copy", delay=100)
>>> batch = task.sample(32)
"""

from __future__ import annotations

from .adding import AddingTask, MultiplicationTask
from .associative_recall import AssociativeRecallTask
from .base import Batch, Task, check_fields
from .copy import CopyTask
from .long_lag import LongLagTask, VeryLongLagTask
from .reber import EmbeddedReberTask
from .selective_copy import SelectiveCopyTask
from .temporal_order import TemporalOrderTask
from .two_sequence import TwoSequenceTask

__all__ = [
    "Batch",
    "Task",
    "CopyTask",
    "SelectiveCopyTask",
    "AddingTask",
    "MultiplicationTask",
    "TemporalOrderTask",
    "AssociativeRecallTask",
    "EmbeddedReberTask",
    "LongLagTask",
    "VeryLongLagTask",
    "TwoSequenceTask",
    "make_task",
    "task_names",
]

_TASKS: tuple[type[Task], ...] = (
    CopyTask,
    SelectiveCopyTask,
    AddingTask,
    MultiplicationTask,
    TemporalOrderTask,
    AssociativeRecallTask,
    EmbeddedReberTask,
    LongLagTask,
    VeryLongLagTask,
    TwoSequenceTask,
)
_REGISTRY: dict[str, type[Task]] = {cls.name: cls for cls in _TASKS}


def task_names() -> list[str]:
    return list(_REGISTRY)


def make_task(name: str, **params: object) -> Task:
    """Build the task registered as ``name`` with ``params`` (validated by the task)."""
    if name not in _REGISTRY:
        raise ValueError(f"name={name!r} is invalid: must be one of {', '.join(map(repr, _REGISTRY))}")
    check_fields(f"task {name!r}", _REGISTRY[name], params)
    return _REGISTRY[name](**params)
