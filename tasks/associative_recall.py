"""Associative recall (Ba et al. 2016, "Using fast weights to attend to the
recent past"), in the multi-query form of modern sequence-model benchmarks
(MQAR, Arora et al. 2023).

``n_pairs`` key-value pairs (distinct keys from ``n_keys``, values uniform
from ``n_values``) are shown as alternating key and value steps, then a
delimiter, then ``n_queries`` distinct keys from the pairs; at each query step
the model answers the key's value.  ``n_queries=1`` is Ba et al.'s task::

    input : c 9 k 8 j 3 f 1 ? k          (Ba et al. write "c9k8j3f1??k")
    target:                    8
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from .base import Batch, Task, check_int, render_columns, step_scores

__all__ = ["AssociativeRecallTask"]

SOLVED_ACCURACY = 0.99


@dataclass(frozen=True)
class AssociativeRecallTask(Task):
    """Recall the value stored with a queried key.

    Inputs are one-hot over keys (``0..n_keys-1``), values (``n_keys..``) and
    the delimiter (last); the output classes are the values.

    Baseline ``ln(n_values)``: values are uniform and independent of the
    keys, so without memory of the pairs no guess beats uniform.
    Solved: Ba et al. report test error rates without a threshold; our
    convention is at least 99% of the queries answered right.
    """

    name: ClassVar[str] = "associative_recall"
    kind: ClassVar[Literal["classification", "regression"]] = "classification"
    n_pairs: int
    n_keys: int = 26
    n_values: int = 10
    n_queries: int = 1

    def __post_init__(self) -> None:
        check_int("n_pairs", self.n_pairs, 1)
        check_int("n_keys", self.n_keys, self.n_pairs)  # keys in one sequence are distinct
        check_int("n_values", self.n_values, 2)
        check_int("n_queries", self.n_queries, 1, self.n_pairs)  # queries are distinct keys

    @property
    def input_size(self) -> int:
        return self.n_keys + self.n_values + 1

    @property
    def output_size(self) -> int:
        return self.n_values

    @property
    def delimiter(self) -> int:
        return self.n_keys + self.n_values

    @property
    def memory_lag(self) -> int:
        # the first key (step 0) may be asked at the last query step
        return 2 * self.n_pairs + self.n_queries

    def _sample(self, batch_size: int, generator: torch.Generator | None) -> Batch:
        # the top-k of i.i.d. uniforms: a uniformly random ordered k-subset
        keys = torch.rand(batch_size, self.n_keys, generator=generator).topk(self.n_pairs, dim=1).indices
        values = torch.randint(0, self.n_values, (batch_size, self.n_pairs), generator=generator)
        asked = torch.rand(batch_size, self.n_pairs, generator=generator).topk(self.n_queries, dim=1).indices
        pairs = torch.stack([keys, self.n_keys + values], dim=2).flatten(1)
        delimiter = torch.full((batch_size, 1), self.delimiter)
        tokens = torch.cat([pairs, delimiter, keys.gather(1, asked)], dim=1)
        targets = torch.zeros_like(tokens)
        targets[:, -self.n_queries :] = values.gather(1, asked)
        mask = torch.zeros_like(tokens, dtype=torch.bool)
        mask[:, -self.n_queries :] = True
        lengths = torch.full((batch_size,), tokens.shape[1], dtype=torch.long)
        inputs = torch.zeros(*tokens.shape, self.input_size).scatter_(2, tokens[..., None], 1.0)
        return Batch(inputs, targets, mask, lengths)

    def metrics(self, outputs: torch.Tensor, batch: Batch) -> dict[str, float]:
        """``accuracy`` over the query steps, ``error_rate`` the fraction of
        sequences with any query wrong."""
        correct = outputs.detach().argmax(dim=-1) == batch.targets
        return {**super().metrics(outputs, batch), **step_scores(correct, batch.mask)}

    def baseline_loss(self) -> float:
        return math.log(self.n_values)

    def is_solved(self, metrics: dict[str, float]) -> bool:
        return metrics["accuracy"] >= SOLVED_ACCURACY

    def _token(self, index: int) -> str:
        if index == self.delimiter:
            return "?"
        if index < self.n_keys:
            return string.ascii_lowercase[index] if self.n_keys <= 26 else f"k{index}"
        value = index - self.n_keys
        return str(value) if self.n_values <= 10 else f"v{value}"

    def describe(self, generator: torch.Generator | None = None) -> str:
        batch = self.sample(1, generator)
        tokens = [self._token(i) for i in batch.inputs[0].argmax(dim=-1).tolist()]
        scored = zip(batch.targets[0].tolist(), batch.mask[0].tolist(), strict=True)
        targets = [self._token(self.n_keys + t) if m else "" for t, m in scored]
        rows = render_columns({"input": tokens, "target": targets})
        return f"{self}: key-value pairs, '?', then queries; memory lag {self.memory_lag} steps\n{rows}"
