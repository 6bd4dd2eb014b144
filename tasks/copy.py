"""The copy task (Arjovsky, Shah & Bengio 2016) and the recall machinery it
shares with the selective copy task.

Vocabulary shared by both tasks: index 0 is the blank, 1..n_symbols the data
symbols, n_symbols + 1 the delimiter (input only).  Inputs are one-hot of size
``n_symbols + 2``; the output classes are the blank and the data symbols
(``n_symbols + 1``).

Copy layout for ``delay=4, n_copy=3``::

    input : 3 1 4 _ _ _ : _ _ _      (symbols, delay-1 blanks, delimiter, n_copy blanks)
    target: _ _ _ _ _ _ _ 3 1 4      (blank for delay + n_copy steps, then the symbols)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from .base import Batch, Task, check_int, render_columns, step_scores

__all__ = ["CopyTask", "RecallTask", "BLANK"]

BLANK = 0
SOLVED_ACCURACY = 0.99


@dataclass(frozen=True)
class RecallTask(Task):
    """Shared behaviour of tasks whose answer is a run of recalled symbols
    (copy, selective copy): vocabulary, scoring of the recall steps, the
    reference step and the text rendering.  Subclasses declare the field
    ``n_symbols`` (not declared here, so each keeps its own field order)."""

    kind: ClassVar[Literal["classification", "regression"]] = "classification"

    @property
    def delimiter(self) -> int:
        return self.n_symbols + 1

    @property
    def input_size(self) -> int:
        return self.n_symbols + 2

    @property
    def output_size(self) -> int:
        return self.n_symbols + 1

    def _encode(self, tokens: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> Batch:
        lengths = torch.full((tokens.shape[0],), tokens.shape[1], dtype=torch.long)
        inputs = torch.zeros(*tokens.shape, self.input_size).scatter_(2, tokens[..., None], 1.0)
        return Batch(inputs, targets, mask, lengths)

    @staticmethod
    def recall_steps(batch: Batch) -> torch.Tensor:
        """Bool ``(B, L)``: the scored steps whose target is a data symbol."""
        return batch.mask & (batch.targets != BLANK)

    def reference_steps(self, batch: Batch) -> torch.Tensor:
        """The first recall step: the answer there needs the oldest symbol."""
        positions = torch.arange(batch.seq_len, device=batch.mask.device).expand_as(batch.mask)
        return torch.where(self.recall_steps(batch), positions, batch.seq_len).amin(dim=1)

    def metrics(self, outputs: torch.Tensor, batch: Batch) -> dict[str, float]:
        """``accuracy`` over the recall steps only (blanks are trivial) and
        ``error_rate``, the fraction of sequences with any symbol wrong."""
        correct = outputs.detach().argmax(dim=-1) == batch.targets
        return {**super().metrics(outputs, batch), **step_scores(correct, self.recall_steps(batch))}

    def is_solved(self, metrics: dict[str, float]) -> bool:
        """Neither Arjovsky et al. 2016 nor Gu & Dao 2023 define a threshold
        (they plot loss / report accuracy); our convention: at least 99% of the
        recalled symbols right."""
        return metrics["accuracy"] >= SOLVED_ACCURACY

    def _token(self, index: int) -> str:
        return {BLANK: "_", self.delimiter: ":"}.get(index, str(index))

    def describe(self, generator: torch.Generator | None = None) -> str:
        batch = self.sample(1, generator)
        tokens = batch.inputs[0].argmax(dim=-1).tolist()
        scored = zip(batch.targets[0].tolist(), batch.mask[0].tolist(), strict=True)
        targets = [self._token(t) if m else "" for t, m in scored]
        rows = render_columns({"input": [self._token(t) for t in tokens], "target": targets})
        unscored = "" if bool(batch.mask.all()) else " (empty target = not scored)"
        return (
            f"{self}: {self.n_symbols} data symbols, '_' blank, ':' delimiter{unscored}; "
            f"memory lag {self.memory_lag} steps\n{rows}"
        )


@dataclass(frozen=True)
class CopyTask(RecallTask):
    """Remember ``n_copy`` symbols over ``delay`` steps (Arjovsky et al. 2016).

    Total length ``delay + 2 * n_copy``; the loss is the mean cross-entropy
    over *all* steps, as in the paper.

    Baseline: the memoryless strategy knows only the time step (every
    sequence has the same layout): blank with certainty for the first
    ``delay + n_copy`` steps, uniform over the symbols afterwards, so
    ``n_copy * ln(n_symbols) / (delay + 2 * n_copy)``.
    """

    name: ClassVar[str] = "copy"
    delay: int
    n_copy: int = 10
    n_symbols: int = 8

    def __post_init__(self) -> None:
        check_int("delay", self.delay, 1)
        check_int("n_copy", self.n_copy, 1)
        # one symbol would leave nothing to remember (a zero baseline)
        check_int("n_symbols", self.n_symbols, 2)

    @property
    def seq_len(self) -> int:
        return self.delay + 2 * self.n_copy

    @property
    def memory_lag(self) -> int:
        # every symbol is recalled delay + n_copy steps after it was shown
        return self.delay + self.n_copy

    def _sample(self, batch_size: int, generator: torch.Generator | None) -> Batch:
        symbols = torch.randint(1, self.n_symbols + 1, (batch_size, self.n_copy), generator=generator)
        tokens = torch.full((batch_size, self.seq_len), BLANK, dtype=torch.long)
        tokens[:, : self.n_copy] = symbols
        tokens[:, self.delay + self.n_copy - 1] = self.delimiter
        targets = torch.full_like(tokens, BLANK)
        targets[:, self.delay + self.n_copy :] = symbols
        return self._encode(tokens, targets, torch.ones_like(tokens, dtype=torch.bool))

    def baseline_loss(self) -> float:
        return self.n_copy * math.log(self.n_symbols) / self.seq_len
