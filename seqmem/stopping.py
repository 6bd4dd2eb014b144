"""When a training run ends: small stopping rules, each testable alone.

``Divergence`` (a NaN/Inf loss or gradient, or a training loss above ``max_loss_ratio`` x the
memoryless baseline), ``Budget`` (optimiser steps), and what "solved" means --
``SolvedEvaluations`` (the held-out criterion with patience) or ``HochreiterStop`` (the 1997
paper's rule on the stream of training sequences).  ``Stopping`` combines them into "done?" and
the run's status; ``seqmem.train.train`` feeds it every ``TrainingStep`` and every evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from seqmem.config import TrainConfig, hochreiter_rule
from tasks.base import Batch, Task

__all__ = [
    "TrainingStep",
    "StoppingRule",
    "Budget",
    "Divergence",
    "SolvedEvaluations",
    "HochreiterStop",
    "RecentColumns",
    "Stopping",
]


@dataclass(frozen=True)
class TrainingStep:
    """One optimiser step as the stopping rules see it, before its update is applied."""

    step: int  # steps taken, this one included
    loss: float
    grad_norm: float  # global norm before clipping
    outputs: torch.Tensor  # detached
    batch: Batch


class StoppingRule:
    """A rule watching a run: ``triggered`` (it never resets) once it holds; ``status`` is what
    the run is then called.  Subclasses override the hooks they need."""

    status: ClassVar[str]

    def __init__(self) -> None:
        self.triggered = False

    def after_step(self, step: TrainingStep) -> None:
        """Called after every training step's backward pass."""

    def after_evaluation(self, solved: bool) -> None:
        """Called after every evaluation on the held-out batch (``solved``: it passed ``task.is_solved``)."""


class Budget(StoppingRule):
    """Spent after ``total_steps`` optimiser steps."""

    status = "budget_exhausted"

    def __init__(self, total_steps: int) -> None:
        super().__init__()
        self.total_steps = total_steps

    def after_step(self, step: TrainingStep) -> None:
        self.triggered = step.step >= self.total_steps


class Divergence(StoppingRule):
    """A step with a NaN or infinite loss or gradient norm, or a loss above ``max_loss``, has
    diverged; ``step`` records which."""

    status = "diverged"

    def __init__(self, max_loss: float = math.inf) -> None:
        super().__init__()
        self.max_loss = max_loss
        self.step: int | None = None

    def after_step(self, step: TrainingStep) -> None:
        finite = math.isfinite(step.loss) and math.isfinite(step.grad_norm)
        if not finite or step.loss > self.max_loss:
            self.triggered, self.step = True, step.step


class SolvedEvaluations(StoppingRule):
    """Solved once ``patience`` consecutive evaluations on the held-out batch pass the task's criterion."""

    status = "solved"

    def __init__(self, patience: int = 1) -> None:
        super().__init__()
        self.patience = patience
        self.streak = 0

    def after_evaluation(self, solved: bool) -> None:
        self.streak = self.streak + 1 if solved else 0
        self.triggered = self.triggered or self.streak >= self.patience


class HochreiterStop(StoppingRule):
    """The stopping rule of Hochreiter & Schmidhuber (1997) on the stream of training sequences:
    the mean loss of the ``window`` most recent training sequences is below ``max_loss`` (by default
    the paper's for the task, ``seqmem.config.hochreiter_rule``: 2,000 and 0.01 for experiments 4-6)
    and they pass
    ``task.is_solved`` (for the adding and temporal order tasks: all of them correct by
    ``task.sequence_correct``; for multiplication: fewer than 140 of 2,000 wrong, the paper's
    experiment 5 rule).  The loss is the task's own (squared error; cross-entropy for temporal
    order, where the paper used squared error too).  Judged on the outputs each step trained on,
    as the paper's online learner was.

    ``task.is_solved`` sees the task's full set of metrics over the window: ``loss``,
    ``loss_ratio`` and ``error_rate`` per sequence, exactly over the last ``window`` sequences;
    every other metric (``abs_error``, ``accuracy``, ...) as the mean of ``task.metrics`` over the
    training batches that cover them, weighted by their sizes (exact when a batch is one
    sequence, as in online learning; else over up to ``window + batch_size - 1`` sequences)."""

    status = "solved"

    def __init__(self, task: Task, window: int | None = None, max_loss: float | None = None) -> None:
        super().__init__()
        paper_window, paper_max_loss = hochreiter_rule(task.name)
        self.task = task
        self.window = paper_window if window is None else window
        self.max_loss = paper_max_loss if max_loss is None else max_loss
        self.sequences = RecentColumns(self.window, 2)  # per sequence: loss, correct (0 or 1)
        self.metric_names: list[str] = []
        self.batches: RecentColumns | None = None  # per batch: size, then task.metrics in metric_names' order
        self.batches_size = 0  # sequences in batches, kept so a step never re-sums them

    def after_step(self, step: TrainingStep) -> None:
        self.triggered = self.update(step.outputs, step.batch) or self.triggered

    def update(self, outputs: torch.Tensor, batch: Batch) -> bool:
        """Add one training batch (its outputs); True when the rule holds after it."""
        self.add(outputs, batch)
        metrics = self.window_metrics()
        return metrics is not None and bool(self.task.is_solved(metrics))

    def add(self, outputs: torch.Tensor, batch: Batch) -> None:
        """Add one training batch (its outputs) to the window."""
        with torch.no_grad():
            mask = batch.mask.to(outputs.dtype)
            per_sequence = (self.task.per_step_loss(outputs, batch) * mask).sum(1) / mask.sum(1).clamp_min(
                1.0
            )
            correct = self.task.sequence_correct(outputs, batch)
            metrics = self.task.metrics(outputs, batch)
        self.sequences.extend(np.array([per_sequence.tolist(), correct.tolist()], dtype=float))
        if self.batches is None:
            self.metric_names = list(metrics)
            # at most window + 1 batches before the oldest are dropped: none falls out unseen
            self.batches = RecentColumns(self.window + 1, 1 + len(self.metric_names))
        self.batches.extend(np.array([[batch.batch_size, *(metrics[name] for name in self.metric_names)]]).T)
        self.batches_size += batch.batch_size
        while self.batches_size - self.batches.values[0, 0] >= self.window:
            self.batches_size -= int(self.batches.values[0, 0])
            self.batches.drop_oldest()

    def window_metrics(self) -> dict[str, float] | None:
        """What ``task.is_solved`` judges: the task's metrics over the window (see the class
        docstring); None while the window is not full or its mean loss is not below the bound."""
        if len(self.sequences) < self.window or self.batches is None:
            return None
        losses, correct = self.sequences.values
        loss = float(np.mean(losses))
        if not loss < self.max_loss:
            return None
        sizes, *columns = self.batches.values
        metrics = {
            name: float(np.dot(sizes, column) / sizes.sum())
            for name, column in zip(self.metric_names, columns, strict=True)
        }
        ratio, error_rate = loss / self.task.baseline_loss(), 1.0 - correct.sum() / len(correct)
        return metrics | {"loss": loss, "loss_ratio": ratio, "error_rate": error_rate}


class RecentColumns:
    """The most recent ``capacity`` columns of ``width`` numbers, oldest first, as one contiguous
    array (``values``, shape ``(width, n)``).  Adding costs O(1) amortised whatever the capacity:
    the paper's rule judges a window of 2,000 or 10,000 sequences at every training step, and
    re-reading it from deques cost 3.8 and 16 ms a step, against about 5 for the rest of an online
    step."""

    def __init__(self, capacity: int, width: int) -> None:
        self.capacity = capacity
        self.buffer = np.empty((width, 2 * capacity))  # the values slide right, then move back once
        self.start = self.end = 0

    def __len__(self) -> int:
        return self.end - self.start

    @property
    def values(self) -> np.ndarray:
        return self.buffer[:, self.start : self.end]

    def extend(self, columns: np.ndarray) -> None:
        """Append ``columns`` (shape ``(width, n)``); the oldest fall out beyond ``capacity``."""
        columns = columns[:, -self.capacity :]
        n = columns.shape[1]
        if self.end + n > self.buffer.shape[1]:  # move the columns that stay to the front
            keep = min(len(self), self.capacity - n)
            self.buffer[:, :keep] = self.buffer[:, self.end - keep : self.end]
            self.start, self.end = 0, keep
        self.buffer[:, self.end : self.end + n] = columns
        self.end += n
        self.start = max(self.start, self.end - self.capacity)

    def drop_oldest(self) -> None:
        self.start += 1


@dataclass
class Stopping:
    """The rules of one run together: it is done once it diverged, spent its budget, or was
    solved (unless ``stop_when_solved`` is False: then it trains on, to equal budgets)."""

    divergence: Divergence
    solved: StoppingRule
    budget: Budget
    stop_when_solved: bool = True

    @classmethod
    def for_run(cls, config: TrainConfig, task: Task) -> Stopping:
        ratio = math.inf if config.max_loss_ratio is None else config.max_loss_ratio
        divergence = Divergence(ratio * task.baseline_loss())
        hochreiter = config.stopping == "hochreiter1997"
        solved = HochreiterStop(task) if hochreiter else SolvedEvaluations(config.solve_patience)
        return cls(divergence, solved, Budget(config.total_steps), config.stop_when_solved)

    @property
    def done(self) -> bool:
        solved = self.stop_when_solved and self.solved.triggered
        return self.divergence.triggered or self.budget.triggered or solved

    @property
    def status(self) -> str:
        """Diverged beats solved (a solved run may diverge later), which beats a spent budget."""
        return next((r.status for r in (self.divergence, self.solved) if r.triggered), self.budget.status)

    def after_step(self, step: TrainingStep) -> None:
        self.divergence.after_step(step)
        if not self.divergence.triggered:  # a diverged step ends the run; nothing else judges it
            self.solved.after_step(step)
            self.budget.after_step(step)

    def after_evaluation(self, solved: bool) -> None:
        self.solved.after_evaluation(solved)
