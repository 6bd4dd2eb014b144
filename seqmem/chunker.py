"""Schmidhuber's (1992) neural history compressor, the two-level "chunker" that Hochreiter &
Schmidhuber (1997) compare LSTM with (their Table 2, "CH").

Two recurrent cells of one preset.  The lower one (the "automatizer") reads every input x_t and,
through ``predictor``, predicts the next one.  Only the inputs it failed to predict reach the
higher one (the "chunker"), together with a time stamp; at every other step the higher state is
carried over unchanged.  The outputs are read from both levels:

    low_t  = lower(W x_t, low_{t-1})
    x^_t   = predictor([x_{t-1}, low_{t-1}])               (the lower level's guess of x_t)
    surprise_t = t == 0  or  max_k |x^_{t,k} - x_{t,k}| >= SURPRISE   (judged without gradient)
    high_t = higher(W' [x_t, t / time_scale], high_{t-1})   if surprise_t,  else high_{t-1}
    y_t    = readout([low_t, high_t]) (+ input_readout(x_t))

Training minimises the task's loss plus ``prediction_loss``, the lower level's squared error in
predicting x_{t+1} (mean over the steps that have a next input).  Where the inputs are locally
predictable (experiment 2a: a fixed run of filler symbols), the lower level learns them, the
higher one then runs only at the first symbol, and a lag of 100 steps is one higher step: the
carried-over state passes its gradient back unchanged.  Where they are not (2b: random fillers),
every input is a surprise and the higher level faces the full lag as an ordinary RNN.

Readings of the 1992/1997 papers (neither fixes them): the surprise threshold is 0.25, the
error bound of the paper's experiment 2 (SURPRISE); the time stamp is one extra input unit
t / time_scale, with time_scale the task's longest lag plus one; the lower level's predictor sees
its input as well as its state (the paper's nets connect every layer to all layers below); the
1992 chunker's further terms -- the lower level also predicting the higher level's state, and the
higher level predicting its own next input -- are left out.

Gradient decay is measured per level: ``level(name)`` is a view of the chunker whose
``forward(inputs, return_states=True)`` returns the chunker's outputs with that level's states,
so ``gradient_norms_by_lag(chunker.level('higher'), batch, task)`` gives ||dL/dh_t|| of the
higher level by lag.  (The Jacobian analyses, which re-run a cell's step along the inputs, do not
apply to the higher level, whose steps are the surprising ones only.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from seqmem.cells import RecurrentCell, make_cell
from seqmem.model import UnrolledStates, unroll
from tasks.base import Task, check_choice

__all__ = ["Chunker", "ChunkerLevel", "LEVELS", "SURPRISE", "make_chunker"]

LEVELS = ("lower", "higher")
SURPRISE = 0.25  # an input is unpredicted when the prediction misses one of its units by this much


class Chunker(nn.Module):
    """The two-level history compressor (see the module docstring).

    ``lower`` and ``higher`` are cells of ``hidden_size`` units each; ``lower`` reads inputs of
    ``input_size``, ``higher`` those plus the time stamp.  ``predictor``: Linear(input_size +
    hidden_size, input_size); ``readout``: Linear(2 hidden_size, output_size);
    ``input_to_output`` adds ``input_readout`` as in ``SequenceModel``.  After a forward pass in
    which gradients are recorded, ``prediction_loss`` holds the lower level's prediction error and
    ``surprises`` (B, L) which steps reached the higher level.
    """

    def __init__(
        self,
        lower: RecurrentCell,
        higher: RecurrentCell,
        input_size: int,
        hidden_size: int,
        output_size: int,
        time_scale: float,
        input_to_output: bool = False,
        logistic_output: bool = False,
    ) -> None:
        super().__init__()
        expected = {"lower": (input_size, hidden_size), "higher": (input_size + 1, hidden_size)}
        for name, cell in (("lower", lower), ("higher", higher)):
            if (cell.input_size, cell.hidden_size) != expected[name]:
                raise ValueError(
                    f"{name} cell sizes (input_size={cell.input_size}, hidden_size={cell.hidden_size}) are "
                    f"invalid: must be input_size={expected[name][0]}, hidden_size={hidden_size}"
                )
        if not isinstance(output_size, int) or output_size < 1:
            raise ValueError(f"output_size={output_size!r} is invalid: must be an integer >= 1")
        if not time_scale > 0:
            raise ValueError(f"time_scale={time_scale!r} is invalid: must be a number > 0")
        self.lower, self.higher = lower, higher
        self.predictor = nn.Linear(input_size + hidden_size, input_size)
        self.readout = nn.Linear(2 * hidden_size, output_size)
        self.input_readout = nn.Linear(input_size, output_size, bias=False) if input_to_output else None
        self.logistic_output = logistic_output
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        self.time_scale = float(time_scale)
        self.preset = f"chunker({lower.preset})"
        self.prediction_loss: Tensor | None = None
        self.surprises: Tensor | None = None

    def unroll(
        self, inputs: Tensor, return_states: bool = True
    ) -> tuple[Tensor, Tensor, dict[str, UnrolledStates]]:
        """Both levels over ``inputs`` (B, L, I): their outputs h (B, L, 2 hidden_size), the
        guesses x^_{t+1} made at every step (B, L, I) and, with ``return_states``, both levels'
        ``UnrolledStates`` by name.

        The lower level runs first, on every input (its fused path where it has one and no states
        are asked for); its guesses decide the surprises at once; then the higher level steps
        through time, running only where some sequence is surprised (its fused path where every
        input is a surprise).  Its gates at other steps are those of its last run."""
        batch, length, _ = inputs.shape
        low_hidden = None if return_states else self.lower.fast_hidden_states(inputs, self.training)
        levels = {}
        if low_hidden is None:
            levels["lower"] = unroll(self.lower, inputs)
            low_hidden = torch.stack(levels["lower"].h, dim=1)
        guesses = self.predictor(torch.cat([inputs, low_hidden], dim=-1))  # guesses[:, t]: x_{t+1}
        with torch.no_grad():
            missed = (guesses[:, :-1] - inputs[:, 1:]).abs().amax(dim=-1) >= SURPRISE
            self.surprises = torch.cat([missed.new_ones(batch, 1), missed], dim=1)
        times = torch.arange(length, device=inputs.device, dtype=inputs.dtype) / self.time_scale
        stamped = torch.cat([inputs, times[None, :, None].expand(batch, -1, 1)], dim=-1)
        if not return_states and bool(self.surprises.all()):  # every input went up: a plain unroll
            high_hidden = self.higher.fast_hidden_states(stamped, self.training)
            if high_hidden is not None:
                return torch.cat([low_hidden, high_hidden], dim=-1), guesses, levels
        high_inputs = self.higher.project_input(stamped)
        high = self.higher.initial_state(batch, device=inputs.device, dtype=inputs.dtype)
        steps = []
        for t in range(length):
            surprise = self.surprises[:, t, None]
            if surprise.any():
                stepped, gates = self.higher.recur(high_inputs[:, t], high)
                high = tuple(torch.where(surprise, new, old) for new, old in zip(stepped, high, strict=True))
            else:  # carried over unchanged, as its own node: dL/dh_t stays the derivative at step t
                high = tuple(block.view_as(block) for block in high)
            steps.append((high, gates))
        levels["higher"] = UnrolledStates.collect(self.higher, steps)
        hidden = torch.cat([low_hidden, torch.stack(levels["higher"].h, dim=1)], dim=-1)
        return hidden, guesses, levels

    def forward(
        self, inputs: Tensor, return_states: bool = False
    ) -> Tensor | tuple[Tensor, dict[str, UnrolledStates]]:
        """Outputs (B, L, output_size); with ``return_states`` also both levels' ``UnrolledStates``
        by name ('lower', 'higher')."""
        if inputs.dim() != 3 or inputs.shape[1] < 1 or inputs.shape[-1] != self.input_size:
            allowed = f"(batch, length >= 1, {self.input_size})"
            raise ValueError(f"inputs shape={tuple(inputs.shape)} is invalid: must be {allowed}")
        hidden, guesses, levels = self.unroll(inputs, return_states)
        outputs = self.readout(hidden)
        if self.input_readout is not None:
            outputs = outputs + self.input_readout(inputs)
        if self.logistic_output:
            outputs = torch.sigmoid(outputs)
        if torch.is_grad_enabled():
            # squared error of the guesses of x_1 .. x_{L-1}, summed over units
            self.prediction_loss = (guesses[:, :-1] - inputs[:, 1:]).square().sum(-1).mean()
        return (outputs, levels) if return_states else outputs

    def level(self, name: str) -> ChunkerLevel:
        """A view of this chunker that reports the states of level ``name`` ('lower', 'higher')."""
        check_choice("name", name, LEVELS)
        return ChunkerLevel(self, name)


class ChunkerLevel(nn.Module):
    """One level of a ``Chunker`` seen as a model: ``forward(inputs, return_states=True)`` gives
    the chunker's outputs and this level's ``UnrolledStates``; ``cell`` is the level's cell.  For
    the analysis functions that need only outputs and states (``gradient_norms_by_lag``)."""

    def __init__(self, chunker: Chunker, name: str) -> None:
        super().__init__()
        self.chunker, self.name = chunker, name
        self.cell: RecurrentCell = getattr(chunker, name)
        self.readout = chunker.readout
        self.input_size, self.hidden_size, self.output_size = (
            chunker.input_size,
            chunker.hidden_size,
            chunker.output_size,
        )
        self.preset = f"{chunker.preset}.{name}"

    def forward(self, inputs: Tensor, return_states: bool = False) -> Tensor | tuple[Tensor, UnrolledStates]:
        if not return_states:
            return self.chunker(inputs)
        outputs, levels = self.chunker(inputs, return_states=True)
        return outputs, levels[self.name]


def make_chunker(
    preset: str,
    task: Task,
    hidden_size: int,
    *,
    cell_params: Mapping[str, Any] | None = None,
    **readout: bool,
) -> Chunker:
    """A ``Chunker`` whose two levels are cells of ``preset`` (with options ``cell_params``), sized
    for ``task``; its time stamps are scaled by the task's longest lag.  ``readout``:
    ``input_to_output`` and ``logistic_output``, as ``make_model`` takes them."""
    lag = task.memory_lag
    cells = [
        make_cell(preset, size, hidden_size, memory_lag=lag, params=cell_params)
        for size in (task.input_size, task.input_size + 1)
    ]
    return Chunker(*cells, task.input_size, hidden_size, task.output_size, lag + 1, **readout)
