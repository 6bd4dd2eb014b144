"""Synthetic long-range memory tasks (depends only on torch).

Every task's ``baseline_loss()`` is the expected loss of the best *memoryless*
strategy: one whose output at step t depends on t alone, never on the inputs
(what Arjovsky et al. 2016 call the memoryless baseline of the copy task).

>>> from tasks import make_task
>>> task = make_task("copy", delay=100)
>>> batch = task.sample(32)
"""

from __future__ import annotations

import dataclasses

from .adding import AddingTask, MultiplicationTask
from .associative_recall import AssociativeRecallTask
from .base import Batch, Task
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
    cls = _REGISTRY[name]
    accepted = [field.name for field in dataclasses.fields(cls)]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"params={unknown} is invalid for task {name!r}: allowed are {', '.join(accepted)}")
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in params and _required(f)]
    if missing:
        raise ValueError(f"{', '.join(missing)} is missing: task {name!r} requires a value for it")
    return cls(**params)


def _required(field: dataclasses.Field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
