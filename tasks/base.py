"""The task contract every generator in ``tasks/`` follows.

A task is a frozen, validated dataclass.  ``sample`` draws a whole batch with
vectorised tensor ops (no Python loop over the batch) from a ``torch.Generator``
so the same seed always gives the same batch.  Everything is batch-first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

__all__ = [
    "Batch",
    "Task",
    "check_int",
    "check_choice",
    "check_fields",
    "close_to_one_hot",
    "step_scores",
    "render_columns",
]


@dataclass(frozen=True)
class Batch:
    """One batch of sequences.

    inputs:  float32 ``(B, L, input_size)``
    targets: long ``(B, L)`` class indices (classification) or float32 ``(B, L)``
             values (regression); entries where ``mask`` is False are ignored.
    mask:    bool ``(B, L)``, True where the loss applies.  Padding of
             variable-length sequences is always False.
    lengths: long ``(B,)``, the true length of every sequence (``L`` when fixed).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.inputs.shape[0]

    @property
    def seq_len(self) -> int:
        return self.inputs.shape[1]

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(t.to(device) for t in (self.inputs, self.targets, self.mask, self.lengths)))

    def with_mask(self, mask: torch.Tensor) -> Batch:
        """The same batch with the loss restricted to ``mask`` (used by the analysis)."""
        return dataclasses.replace(self, mask=mask & self.mask)


def check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> None:
    """Raise a one-line ValueError unless ``value`` is an int in [minimum, maximum]."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        allowed = f"an integer >= {minimum}" if maximum is None else f"an integer in [{minimum}, {maximum}]"
        raise ValueError(f"{name}={value!r} is invalid: must be {allowed}")


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """Raise a one-line ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}={value!r} is invalid: must be one of {', '.join(map(repr, choices))}")


def check_fields(
    owner: str, cls: type, given: Mapping[str, object], spell: Callable[[str], str] = str
) -> None:
    """Raise a one-line ValueError unless ``given`` (field name -> value) names only fields of
    the dataclass ``cls`` and every field it requires (one without a default).

    ``owner`` names whose fields they are in the message ("task 'copy'", "TrainConfig");
    ``spell`` writes a field name as the user typed it (e.g. as a command-line flag)."""
    fields = [f for f in dataclasses.fields(cls) if f.init]
    listing = ", ".join(spell(f.name) for f in fields)
    for name, value in given.items():
        if name not in {f.name for f in fields}:
            raise ValueError(
                f"{spell(name)}={value!r} is invalid: {owner} has no such field (its fields: {listing})"
            )
    for f in fields:
        if (
            f.name not in given
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ):
            raise ValueError(f"{spell(f.name)} is missing: {owner} requires it (its fields: {listing})")


def step_scores(correct: torch.Tensor, where: torch.Tensor) -> dict[str, float]:
    """Score the steps that matter: ``correct`` and ``where`` are bool ``(B, L)``.

    ``accuracy`` is the fraction of ``where`` steps that are correct and
    ``error_rate`` the fraction of sequences with at least one wrong step
    (the papers count wrong *sequences*)."""
    wrong = where & ~correct
    accuracy = 1.0 - float(wrong.sum()) / max(int(where.sum()), 1)
    return {"accuracy": accuracy, "error_rate": float(wrong.any(dim=1).float().mean())}


def close_to_one_hot(
    outputs: torch.Tensor, batch: Batch, where: torch.Tensor, tolerance: float
) -> torch.Tensor:
    """(B, L) bool: at the ``where`` steps, every softmax probability within ``tolerance`` of the
    one-hot target (True elsewhere)."""
    scored = outputs.detach()[where]
    one_hot = torch.nn.functional.one_hot(batch.targets[where], outputs.shape[-1])
    close = torch.ones_like(where)
    close[where] = (scored.softmax(dim=-1) - one_hot).abs().amax(dim=-1) < tolerance
    return close


def render_columns(rows: dict[str, list[str]], max_run: int = 3) -> str:
    """Lay out token rows as aligned columns, one line per row.

    Runs of more than ``max_run`` identical columns (the long blank stretches
    that make these tasks hard) are shown once with a ``×n`` count, so a
    1000-step example still fits on a screen."""
    columns = list(zip(*rows.values(), strict=True))
    cells: list[tuple[str, ...]] = []
    start = 0
    while start < len(columns):
        end = start
        while end < len(columns) and columns[end] == columns[start]:
            end += 1
        run = end - start
        if run > max_run:
            cells.append(tuple(f"{token}×{run}" if token else "" for token in columns[start]))
        else:
            cells.extend(columns[start:end])
        start = end
    widths = [max(map(len, cell)) for cell in cells]
    label_width = max(map(len, rows))
    lines = []
    for i, label in enumerate(rows):
        tokens = " ".join(cell[i].ljust(width) for cell, width in zip(cells, widths, strict=True))
        lines.append(f"{label:>{label_width}}: {tokens}".rstrip())
    return "\n".join(lines)


@dataclass(frozen=True)
class Task:
    """Base class of all tasks (subclasses are frozen dataclasses).

    Subclasses set ``name`` and ``kind`` and implement ``_sample``, ``input_size``,
    ``output_size``, ``baseline_loss``, ``is_solved``, ``memory_lag`` and
    ``describe``; they validate their fields in ``__post_init__`` with
    ``check_int``/``check_choice`` so a bad value fails at construction.
    """

    name: ClassVar[str]
    kind: ClassVar[Literal["classification", "regression"]]

    # -- sizes ---------------------------------------------------------------
    @property
    def input_size(self) -> int:
        raise NotImplementedError

    @property
    def output_size(self) -> int:
        raise NotImplementedError

    @property
    def memory_lag(self) -> int:
        """The largest number of steps between an input the answer needs and the
        output that needs it (the T_max of chrono initialisation)."""
        raise NotImplementedError

    # -- sampling --------------------------------------------------------------
    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        check_int("batch_size", batch_size, 1)
        return self._sample(batch_size, generator)

    def _sample(self, batch_size: int, generator: torch.Generator | None) -> Batch:
        raise NotImplementedError

    def reference_steps(self, batch: Batch) -> torch.Tensor:
        """Per sample, the output step whose answer depends on the oldest input:
        the step from which the analysis measures lags.  Default: the last step
        where the loss applies."""
        positions = torch.arange(batch.seq_len, device=batch.mask.device).expand_as(batch.mask)
        return torch.where(batch.mask, positions, -1).amax(dim=1)

    # -- scoring ---------------------------------------------------------------
    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Masked mean loss: cross-entropy over classes or squared error.
        ``outputs`` is ``(B, L, output_size)``."""
        per_step = self.per_step_loss(outputs, batch)
        mask = batch.mask.to(per_step.dtype)
        return (per_step * mask).sum() / mask.sum().clamp_min(1.0)

    def per_step_loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Unmasked loss at every step, ``(B, L)``."""
        if self.kind == "classification":
            return torch.nn.functional.cross_entropy(outputs.transpose(1, 2), batch.targets, reduction="none")
        return (outputs[..., 0] - batch.targets.to(outputs.dtype)) ** 2

    def metrics(self, outputs: torch.Tensor, batch: Batch) -> dict[str, float]:
        """At least ``loss`` and ``loss_ratio`` (loss / baseline_loss), plus the
        task's own measures (``accuracy``, ``abs_error``, ``error_rate`` …)."""
        with torch.no_grad():
            loss = float(self.loss(outputs, batch))
        return {"loss": loss, "loss_ratio": loss / self.baseline_loss()}

    def sequence_correct(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Per sequence, bool ``(B,)``: passes the task's per-sequence criterion, the one whose
        failures ``metrics``' ``error_rate`` counts (used by per-sequence stopping rules).
        Tasks without such a criterion raise NotImplementedError."""
        raise NotImplementedError(f"task {self.name!r} has no per-sequence correctness criterion")

    def baseline_loss(self) -> float:
        """Expected loss of the best memoryless strategy, in closed form."""
        raise NotImplementedError

    def is_solved(self, metrics: dict[str, float]) -> bool:
        """The success criterion of the task's source paper."""
        raise NotImplementedError

    # -- presentation ----------------------------------------------------------
    def params(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def describe(self, generator: torch.Generator | None = None) -> str:
        """One example rendered as readable text."""
        raise NotImplementedError

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{self.name}({args})"
