"""The temporal order problem (Hochreiter & Schmidhuber 1997, experiments 6a/6b).

A sequence starts with ``E``, ends with the trigger ``B`` and is otherwise
filled with distractors ``a b c d``, except at ``n_markers`` steps that carry
``X`` or ``Y``.  At the trigger the model names the class: the order of the
X/Y symbols read as a binary number (X = 0, Y = 1, first marker most
significant), so 2 markers give 4 classes (XX, XY, YX, YY = the paper's
Q, R, S, U) and 3 markers give 8.

The paper's setting, for ``length = 100``: lengths uniform in [100, 110]; 6a:
t1 in [10, 20], t2 in [50, 60]; 6b: t1 in [10, 20], t2 in [33, 43],
t3 in [66, 76].  We scale each range by ``length / 100`` (rounding), and the
lengths to [length, length + length // 10]; steps count from E at step 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from .base import Batch, Task, check_int, close_to_one_hot, render_columns, step_scores

__all__ = ["TemporalOrderTask", "SYMBOLS", "PAPER_RANGES"]

SYMBOLS = ("a", "b", "c", "d", "X", "Y", "E", "B")  # input index = position in this tuple
N_DISTRACTORS, X, START, TRIGGER = 4, 4, 6, 7
PAPER_RANGES = {2: ((10, 20), (50, 60)), 3: ((10, 20), (33, 43), (66, 76))}
TOLERANCE = 0.3  # the paper: correct iff every output unit is within 0.3 of its target


@dataclass(frozen=True)
class TemporalOrderTask(Task):
    """Classify a sequence by the order of its X/Y symbols.

    Baseline ``n_markers * ln 2`` = ln(number of classes): the classes are
    equally likely and nothing before the trigger is remembered.
    Solved (the paper's criterion): every test sequence has every softmax
    probability within 0.3 of its one-hot target (``error_rate == 0``).
    """

    name: ClassVar[str] = "temporal_order"
    kind: ClassVar[Literal["classification", "regression"]] = "classification"
    input_size: ClassVar[int] = len(SYMBOLS)
    length: int = 100
    n_markers: int = 2

    def __post_init__(self) -> None:
        # at length 10 the scaled ranges are still disjoint and clear of E and B
        check_int("length", self.length, 10)
        check_int("n_markers", self.n_markers, 2, 3)

    @property
    def ranges(self) -> tuple[tuple[int, int], ...]:
        """Inclusive step range of each marker, scaled from the paper's."""
        scale = self.length / 100
        return tuple((round(lo * scale), round(hi * scale)) for lo, hi in PAPER_RANGES[self.n_markers])

    @property
    def max_len(self) -> int:
        return self.length + self.length // 10

    @property
    def output_size(self) -> int:
        return 2**self.n_markers

    @property
    def memory_lag(self) -> int:
        # the earliest first marker to the latest trigger
        return self.max_len - 1 - self.ranges[0][0]

    def _sample(self, batch_size: int, generator: torch.Generator | None) -> Batch:
        rows = torch.arange(batch_size)
        lengths = torch.randint(self.length, self.max_len + 1, (batch_size,), generator=generator)
        tokens = torch.randint(0, N_DISTRACTORS, (batch_size, self.max_len), generator=generator)
        tokens[:, 0] = START
        tokens[rows, lengths - 1] = TRIGGER
        label = torch.zeros(batch_size, dtype=torch.long)
        for lo, hi in self.ranges:  # a loop over the 2-3 markers, not over the batch
            step = torch.randint(lo, hi + 1, (batch_size,), generator=generator)
            is_y = torch.randint(0, 2, (batch_size,), generator=generator)
            tokens[rows, step] = X + is_y
            label = 2 * label + is_y
        valid = torch.arange(self.max_len) < lengths[:, None]
        inputs = torch.zeros(batch_size, self.max_len, self.input_size)
        inputs.scatter_(2, tokens[..., None], valid[..., None].to(torch.float32))  # one-hot, padding 0
        mask = torch.nn.functional.one_hot(lengths - 1, self.max_len).bool()
        targets = torch.where(mask, label[:, None], 0)
        return Batch(inputs, targets, mask, lengths)

    def metrics(self, outputs: torch.Tensor, batch: Batch) -> dict[str, float]:
        """``accuracy`` (argmax at the trigger) and ``error_rate`` (fraction of
        sequences failing the paper's 0.3 criterion on the softmax outputs)."""
        outputs = outputs.detach()
        close = close_to_one_hot(outputs, batch, batch.mask, TOLERANCE)
        return {
            **super().metrics(outputs, batch),
            "accuracy": step_scores(outputs.argmax(dim=-1) == batch.targets, batch.mask)["accuracy"],
            "error_rate": step_scores(close, batch.mask)["error_rate"],
        }

    def sequence_correct(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Every softmax output at the trigger within 0.3 of the one-hot target."""
        return close_to_one_hot(outputs, batch, batch.mask, TOLERANCE).all(dim=1)

    def baseline_loss(self) -> float:
        return self.n_markers * math.log(2)

    def is_solved(self, metrics: dict[str, float]) -> bool:
        return metrics["error_rate"] == 0.0

    def class_name(self, label: int) -> str:
        return format(label, f"0{self.n_markers}b").replace("0", "X").replace("1", "Y")

    def describe(self, generator: torch.Generator | None = None) -> str:
        batch = self.sample(1, generator)
        n = int(batch.lengths[0])
        symbols = [SYMBOLS[i] for i in batch.inputs[0, :n].argmax(dim=-1).tolist()]
        # distractors are noise: fold them into runs so the markers stand out
        shown = [s if s in "XYEB" else "·" for s in symbols]
        label = int(batch.targets[0, n - 1])
        ranges = ", ".join(f"[{lo}, {hi}]" for lo, hi in self.ranges)
        return (
            f"{self}: '·' = distractor a-d; X/Y at steps in {ranges}; at the trigger B (step {n - 1}) "
            f"answer class {label} = {self.class_name(label)}; memory lag {self.memory_lag} steps\n"
            f"{render_columns({'input': shown})}"
        )
