"""The embedded Reber grammar (Hochreiter & Schmidhuber 1997, experiment 1; after Cleeremans,
Servan-Schreiber & McClelland 1989 and Fahlman 1991).

A Reber string walks the grammar's graph (the paper's Figure 3) from B to E, taking each of two
edges with probability 0.5.  The embedded grammar (Figure 4) wraps one in ``B T ... T E`` or
``B P ... P E``, so the symbol before last repeats the second.  The model reads a string one symbol
at a time and predicts the next one at every step; the last symbol (E) is never an input.

Inputs are one-hot over ``B T P S X V E``; the target at step t is the symbol that follows, and the
loss is cross-entropy at every step of the string (padding is masked).  The paper's success
criterion is stricter than the argmax: at every step the output units of *all* the symbols the
grammar allows next must be the most active ones.  The grammar is deterministic given what was
read, so those legal sets are recomputed from the inputs (``legal_next``).

The paper's strings have no length limit.  We redraw those longer than ``max_length`` symbols (at
the default of 60, one in about 10^7); every statistic here, the baseline included, is that of the
strings conditioned on ``length <= max_length``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch

from .base import Batch, Task, check_int, render_columns, step_scores

__all__ = ["EmbeddedReberTask", "SYMBOLS", "REBER", "SHORTEST"]

SYMBOLS = "BTPSXVE"  # input and output index = position in this string
# The Reber grammar, the paper's Figure 3: state -> its edges (symbol, next state); None ends it.
REBER: dict[int, tuple[tuple[str, int | None], ...]] = {
    0: (("B", 1),),
    1: (("T", 2), ("P", 3)),
    2: (("S", 2), ("X", 4)),
    3: (("T", 3), ("V", 5)),
    4: (("X", 3), ("S", 6)),
    5: (("P", 4), ("V", 6)),
    6: (("E", None),),
}
SHORTEST = 9  # B T BTXSE T E: the shortest embedded string


def _embedded_edges() -> list[tuple[int, str, int]]:
    """The embedded grammar (Figure 4) as one automaton: edges (state, symbol, next state).

    State 0 emits B; state 1 chooses T or P; each choice leads into its own copy of the Reber
    grammar (states 2-8 and 9-15), whose final E leads to a state that repeats the choice (16, 17);
    state 18 emits the closing E into the end state 19."""
    edges = [(0, "B", 1)]
    for copy, branch in enumerate("TP"):
        offset, repeat = 2 + 7 * copy, 16 + copy
        edges.append((1, branch, offset))
        for state, choices in REBER.items():
            edges += [(offset + state, s, repeat if nxt is None else offset + nxt) for s, nxt in choices]
        edges.append((repeat, branch, 18))
    edges.append((18, "E", 19))
    return edges


EDGES = _embedded_edges()
START, END = 0, 19
N_STATES = END + 1


def _tables() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lookup tables over states: the (up to) two outgoing edges' symbols and next states
    (single-edge states repeat their edge; the end state emits -1 and stays), the next state
    after reading a symbol (illegal symbols lead to the end state, which allows nothing), and
    the legal next symbols."""
    edge_symbol = torch.full((N_STATES, 2), -1)
    edge_next = torch.full((N_STATES, 2), END)
    next_state = torch.full((N_STATES, len(SYMBOLS)), END)
    legal = torch.zeros(N_STATES, len(SYMBOLS), dtype=torch.bool)
    for state in range(END):
        out = [(SYMBOLS.index(s), nxt) for src, s, nxt in EDGES if src == state]
        for column in range(2):
            symbol, nxt = out[min(column, len(out) - 1)]
            edge_symbol[state, column], edge_next[state, column] = symbol, nxt
        for symbol, nxt in out:
            next_state[state, symbol], legal[state, symbol] = nxt, True
    return edge_symbol, edge_next, next_state, legal


EDGE_SYMBOL, EDGE_NEXT, NEXT_STATE, LEGAL = _tables()


@functools.cache
def memoryless_loss(max_length: int) -> float:
    """Expected cross-entropy per scored step of the best predictor that knows only the step t.

    It predicts, at step t, the distribution p_t of the symbol that follows among strings still
    running, so the loss is sum_t a_t H(p_t) / sum_t a_t, with a_t the probability that step t
    is scored.  Exact, by forward probabilities f_i(u) of being in state u after i symbols and
    the probabilities h_r(u) of ending within r more symbols (the condition length <= max_length):
    the edge u -> v taken as step t's target (symbol t + 1) has weight
    f_{t+1}(u) P(u -> v) h_{max_length - t - 2}(v) / h_{max_length}(start)."""
    src = np.array([e[0] for e in EDGES])
    dst = np.array([e[2] for e in EDGES])
    symbol = np.array([SYMBOLS.index(e[1]) for e in EDGES])
    prob = 1.0 / np.bincount(src, minlength=N_STATES)[src]
    ends_within = [np.eye(N_STATES)[END]]  # h_0
    for _ in range(max_length):
        ends_within.append(np.eye(N_STATES)[END] + np.bincount(src, prob * ends_within[-1][dst], N_STATES))
    forward = np.eye(N_STATES)[START]  # f_0
    scored = total = 0.0
    for t in range(max_length - 1):
        forward = np.bincount(dst, prob * forward[src], N_STATES)  # f_{t+1}
        weight = forward[src] * prob * ends_within[max_length - t - 2][dst] / ends_within[max_length][START]
        alive = weight.sum()
        if alive > 0:
            p = np.bincount(symbol, weight, len(SYMBOLS)) / alive
            total += alive * -np.sum(p[p > 0] * np.log(p[p > 0]))
            scored += alive
    return float(total / scored)


@dataclass(frozen=True)
class EmbeddedReberTask(Task):
    """Predict the next symbol of embedded Reber strings (see the module docstring).

    ``Batch.lengths`` counts the input steps (the string's length minus one); batches are as long
    as their longest string.  At step ``lengths - 2`` (input: the inner string's E) the answer is
    the T or P read at step 1 (``reference_steps``); that is the long lag, at least 5 steps.

    Metrics: ``accuracy``, the fraction of steps where the legal next symbols are the most
    active outputs; ``error_rate``, the fraction of strings with any step wrong (the paper's
    criterion: a string is right when every step is); ``recall_accuracy``, the fraction of strings
    whose repeated T/P step is right.  Solved: every string right (the paper: every string of
    its 256 training and 256 test strings).  The paper trains on a fixed set of 256 strings;
    ``sample`` draws fresh ones, so a fixed set is one ``sample(256, seeded generator)``.

    Baseline ``memoryless_loss(max_length)``: the best prediction from the step number alone
    (1.28 nats per step at the default).  Unlike the other tasks the loss cannot reach zero: at
    each two-way branch (63 % of the steps) even the grammar only knows a coin flip, so predicting
    the legal symbols uniformly -- a solved task -- costs about 0.63 ln 2 = 0.44 nats per step,
    a loss ratio of 0.34.
    """

    name: ClassVar[str] = "embedded_reber"
    kind: ClassVar[Literal["classification", "regression"]] = "classification"
    input_size: ClassVar[int] = len(SYMBOLS)
    output_size: ClassVar[int] = len(SYMBOLS)
    max_length: int = 60

    def __post_init__(self) -> None:
        check_int("max_length", self.max_length, SHORTEST)

    @property
    def memory_lag(self) -> int:
        # symbol 1 is needed at step length - 3 of a string of `length` symbols
        return self.max_length - 4

    def _strings(self, n: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` walks of at most ``max_length`` symbols: symbol indices (-1 after the end) and
        whether each walk ended."""
        choices = torch.randint(0, 2, (n, self.max_length), generator=generator)
        state = torch.full((n,), START)
        symbols = torch.full((n, self.max_length), -1)
        for t in range(self.max_length):  # steps of all walks at once; the loop is over time
            symbols[:, t] = EDGE_SYMBOL[state, choices[:, t]]
            state = EDGE_NEXT[state, choices[:, t]]
            if bool((state == END).all()):
                break
        return symbols, state == END

    def _sample(self, batch_size: int, generator: torch.Generator | None) -> Batch:
        symbols, ended = self._strings(batch_size, generator)
        while not bool(ended.all()):  # redraw the strings longer than max_length
            redo = (~ended).nonzero()[:, 0]
            symbols[redo], ended[redo] = self._strings(len(redo), generator)
        lengths = (symbols >= 0).sum(1) - 1  # input steps: every symbol but the final E
        steps = int(lengths.max())
        valid = torch.arange(steps) < lengths[:, None]
        inputs = torch.zeros(batch_size, steps, self.input_size)
        inputs.scatter_(2, symbols[:, :steps, None].clamp_min(0), valid[..., None].to(torch.float32))
        targets = torch.where(valid, symbols[:, 1 : steps + 1], 0)
        return Batch(inputs, targets, valid, lengths)

    def legal_next(self, batch: Batch) -> torch.Tensor:
        """Bool ``(B, L, 7)``: the symbols the grammar allows after the inputs up to each step
        (nothing on padding)."""
        symbols = batch.inputs.argmax(-1)
        valid = torch.arange(batch.seq_len, device=batch.mask.device) < batch.lengths[:, None]
        state = torch.full((batch.batch_size,), START, device=symbols.device)
        legal = torch.zeros(*symbols.shape, len(SYMBOLS), dtype=torch.bool, device=symbols.device)
        next_state, legal_symbols = NEXT_STATE.to(symbols.device), LEGAL.to(symbols.device)
        for t in range(batch.seq_len):  # the automaton reads all strings at once
            state = torch.where(valid[:, t], next_state[state, symbols[:, t]], END)
            legal[:, t] = legal_symbols[state]
        return legal

    def _steps_right(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """(B, L) bool: every legal next symbol's output above every other output."""
        outputs, legal = outputs.detach(), self.legal_next(batch)
        lowest_legal = outputs.masked_fill(~legal, math.inf).amin(-1)
        highest_other = outputs.masked_fill(legal, -math.inf).amax(-1)
        return (lowest_legal > highest_other) & legal.any(-1)

    def reference_steps(self, batch: Batch) -> torch.Tensor:
        """The step whose answer is the repeated T/P: it needs symbol 1."""
        return batch.lengths - 2

    def metrics(self, outputs: torch.Tensor, batch: Batch) -> dict[str, float]:
        right = self._steps_right(outputs, batch)
        recall = right[torch.arange(batch.batch_size), self.reference_steps(batch)]
        return {
            **super().metrics(outputs, batch),
            **step_scores(right, batch.mask),
            "recall_accuracy": float(recall.float().mean()),
        }

    def sequence_correct(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Every step of the string right (the legal next symbols most active)."""
        return (self._steps_right(outputs, batch) | ~batch.mask).all(dim=1)

    def baseline_loss(self) -> float:
        return memoryless_loss(self.max_length)

    def is_solved(self, metrics: dict[str, float]) -> bool:
        return metrics["error_rate"] == 0.0

    def describe(self, generator: torch.Generator | None = None) -> str:
        batch = self.sample(1, generator)
        n = int(batch.lengths[0])
        legal = self.legal_next(batch)[0, :n]
        inputs = [SYMBOLS[i] for i in batch.inputs[0, :n].argmax(-1).tolist()]
        allowed = ["".join(s for s, ok in zip(SYMBOLS, row, strict=True) if ok) for row in legal.tolist()]
        return (
            f"{self}: predict the next symbol at every step ('next': the symbols the grammar allows); "
            f"at step {n - 2} the answer is step 1's {inputs[1]}; memory lag up to {self.memory_lag} steps\n"
            f"{render_columns({'input': inputs, 'next': allowed}, max_run=n)}"  # short: nothing folded
        )
