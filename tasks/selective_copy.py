"""The selective copying task (Gu & Dao 2023, after the copying generator of
the S4 code base): ``n_copy`` symbols sit at random positions among blanks, and
after them the model must emit the symbols in order, ignoring the blanks.

Layout for ``length=8, n_copy=3``::

    input : _ 3 _ _ 1 _ 4 _ : : :     (data region of `length` steps, then
    target:                 3 1 4      one delimiter per recall step)

Only the ``n_copy`` recall steps are scored, as in the paper.  Symbols are
drawn with replacement, so ``n_copy`` may exceed ``n_symbols`` (the default
16 > 8 does); what must hold is ``n_copy <= length``, since every symbol needs
its own position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .base import Batch, check_int
from .copy import BLANK, RecallTask

__all__ = ["SelectiveCopyTask"]


@dataclass(frozen=True)
class SelectiveCopyTask(RecallTask):
    """Copy ``n_copy`` symbols scattered over ``length`` steps.

    Baseline ``ln(n_symbols)``: the recall steps are always the last
    ``n_copy`` steps (and each carries the delimiter), so a memoryless
    predictor knows *when* it is scored, from the time step alone or from the
    current input alone, but not *what*: uniform over the symbols is the best
    it can do.  (Were the blanks scored too, they would add zero loss for the
    same reason, only diluting the average.)
    """

    name: ClassVar[str] = "selective_copy"
    length: int
    n_copy: int = 16
    n_symbols: int = 8

    def __post_init__(self) -> None:
        check_int("n_copy", self.n_copy, 1)
        check_int("n_symbols", self.n_symbols, 2)
        check_int("length", self.length, self.n_copy)

    @property
    def memory_lag(self) -> int:
        # symbol k sits at position >= k and is recalled at step length + k
        return self.length

    def _sample(self, batch_size: int, generator: torch.Generator | None) -> Batch:
        # the top-k of i.i.d. uniforms is a uniformly random k-subset of positions
        scores = torch.rand(batch_size, self.length, generator=generator)
        positions = scores.topk(self.n_copy, dim=1).indices.sort(dim=1).values
        symbols = torch.randint(1, self.n_symbols + 1, (batch_size, self.n_copy), generator=generator)
        seq_len = self.length + self.n_copy
        tokens = torch.full((batch_size, seq_len), BLANK, dtype=torch.long)
        tokens.scatter_(1, positions, symbols)
        tokens[:, self.length :] = self.delimiter
        targets = torch.full_like(tokens, BLANK)
        targets[:, self.length :] = symbols
        mask = torch.zeros_like(tokens, dtype=torch.bool)
        mask[:, self.length :] = True
        return self._encode(tokens, targets, mask)

    def baseline_loss(self) -> float:
        return math.log(self.n_symbols)
