"""SequenceModel: a recurrent cell unrolled over time with a linear readout at every step.

There is one unroll loop (``unroll``, which ``SequenceModel.unroll`` and the chunker's lower level
run): the input projection of all steps is one matmul before the loop, then the cell's recurrence
runs step by step.  It serves ``return_states=True`` (the analysis needs every state in the
autograd graph) and every cell without a fast path (the 1997 LSTM without forget gate, any new
cell that only writes ``recur``).

Otherwise ``forward`` takes the cell's fast whole-sequence path (``cell.fast_hidden_states``):
torch.nn's fused RNN/LSTM/GRU kernel run on the cell's own tensors, or for a vanilla RNN on the
CPU backpropagation through time by hand (see ``seqmem.cells.rnn``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from seqmem.cells import RecurrentCell, make_cell
from seqmem.cells.base import State
from tasks.base import Task

__all__ = ["UnrolledStates", "SequenceModel", "unroll", "make_model"]


@dataclass
class UnrolledStates:
    """Per-step states of one unroll.

    blocks: per state block of the cell (``cell.state_names``, the output h first), L tensors
            (B, H): the block after step t, the very tensor fed to step t + 1 (and, for h, to the
            readout), so ``torch.autograd.grad(loss, states.h)`` is the total dL/dh_t.
    gates:  gate activations stacked over time, each (B, L, H).
    """

    blocks: dict[str, list[Tensor]]
    gates: dict[str, Tensor]

    @classmethod
    def collect(cls, cell: RecurrentCell, steps: list[tuple[State, dict[str, Tensor]]]) -> UnrolledStates:
        """The states of an unroll from what ``cell.recur`` returned at each step, in order."""
        blocks = {name: [state[k] for state, _ in steps] for k, name in enumerate(cell.state_names)}
        gates = {name: torch.stack([g[name] for _, g in steps], dim=1) for name in cell.gate_names}
        return cls(blocks, gates)

    @property
    def h(self) -> list[Tensor]:
        """The cell's output h_t (its first state block) after every step."""
        return next(iter(self.blocks.values()))

    @property
    def c(self) -> list[Tensor] | None:
        """The cell states c_t after every step; None for cells without one."""
        return self.blocks.get("c")


class SequenceModel(nn.Module):
    """``cell`` unrolled over the inputs, ``readout = Linear(hidden_size, output_size)`` at every step.

    ``fused=False`` forces the unroll loop everywhere, even where the cell has a fast path (for
    comparisons; results are equal).  ``input_to_output=True`` adds ``input_readout``, a
    ``Linear(input_size, output_size, bias=False)`` from the step's input to its output (the nets
    of Hochreiter & Schmidhuber's experiment 2, where every layer sees all layers below).
    ``logistic_output=True`` squashes the outputs with the logistic sigmoid (that paper's output
    units, for targets in [0, 1]).  ``cell_joins_later=True`` starts the net without its cell, as
    that paper grew its experiment 2 nets: the outputs see a zero hidden state (so no gradient
    reaches the cell or the readout's weights) until ``join_cell()``; whether it has joined is the
    buffer ``cell_joined``, saved with the weights.
    """

    def __init__(
        self,
        cell: RecurrentCell,
        input_size: int,
        hidden_size: int,
        output_size: int,
        fused: bool = True,
        input_to_output: bool = False,
        logistic_output: bool = False,
        cell_joins_later: bool = False,
    ) -> None:
        super().__init__()
        if (cell.input_size, cell.hidden_size) != (input_size, hidden_size):
            raise ValueError(
                f"cell sizes (input_size={cell.input_size}, hidden_size={cell.hidden_size}) do not match "
                f"input_size={input_size}, hidden_size={hidden_size}"
            )
        if not isinstance(output_size, int) or output_size < 1:
            raise ValueError(f"output_size={output_size!r} is invalid: must be an integer >= 1")
        self.cell = cell
        self.readout = nn.Linear(hidden_size, output_size)
        self.input_readout = nn.Linear(input_size, output_size, bias=False) if input_to_output else None
        self.logistic_output = logistic_output
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        self.fused = fused
        self.preset = cell.preset
        self.cell_joined: Tensor | None
        self.register_buffer("cell_joined", torch.tensor(False) if cell_joins_later else None)

    @property
    def cell_in(self) -> bool:
        """Whether the outputs see the cell (always, unless it was built to join later and has not)."""
        return self.cell_joined is None or bool(self.cell_joined)

    def join_cell(self) -> None:
        """From now on the outputs see the cell."""
        if self.cell_joined is None:
            raise ValueError("join_cell() is invalid here: this model has its cell from the start")
        self.cell_joined.fill_(True)

    def unroll(self, inputs: Tensor) -> UnrolledStates:
        """Run the cell over ``inputs`` (B, L, I) step by step, keeping every state and gate."""
        return unroll(self.cell, inputs)

    def forward(self, inputs: Tensor, return_states: bool = False) -> Tensor | tuple[Tensor, UnrolledStates]:
        """Outputs (B, L, output_size); with ``return_states`` also the ``UnrolledStates``."""
        if inputs.dim() != 3 or inputs.shape[1] < 1 or inputs.shape[-1] != self.input_size:
            allowed = f"(batch, length >= 1, {self.input_size})"
            raise ValueError(f"inputs shape={tuple(inputs.shape)} is invalid: must be {allowed}")
        hidden = None
        if self.fused and not return_states:
            hidden = self.cell.fast_hidden_states(inputs, self.training)
        if hidden is None:
            states = self.unroll(inputs)
            hidden = torch.stack(states.h, dim=1)
        if not self.cell_in:  # the outputs see the inputs only, and no error reaches the cell
            hidden = torch.zeros_like(hidden)
        outputs = self.readout(hidden)
        if self.input_readout is not None:
            outputs = outputs + self.input_readout(inputs)
        if self.logistic_output:
            outputs = torch.sigmoid(outputs)
        return (outputs, states) if return_states else outputs


def unroll(cell: RecurrentCell, inputs: Tensor) -> UnrolledStates:
    """The one unroll loop: ``cell`` over ``inputs`` (B, L, I) from the zero state, step by step,
    keeping every state and gate (the input projection of all steps is one matmul before it)."""
    state = cell.initial_state(inputs.shape[0], device=inputs.device, dtype=inputs.dtype)
    steps = []
    with parametrize.cached():  # a parametrised W_hh (the expRNN's) is computed once, not per step
        for x_proj in cell.project_input(inputs).unbind(dim=1):
            state, step_gates = cell.recur(x_proj, state)
            steps.append((state, step_gates))
    return UnrolledStates.collect(cell, steps)


def make_model(
    preset: str,
    task: Task,
    hidden_size: int,
    *,
    cell_params: Mapping[str, Any] | None = None,
    input_to_output: bool = False,
    logistic_output: bool = False,
    cell_joins_later: bool = False,
) -> SequenceModel:
    """A ``SequenceModel`` with cell ``preset`` (and its options ``cell_params``) sized for
    ``task`` (its input/output sizes; its ``memory_lag`` is the T_max of chrono initialisation)."""
    if not all(hasattr(task, size) for size in ("input_size", "output_size", "memory_lag")):
        raise ValueError(
            f"task={task!r} is invalid: must be a tasks.Task (its input_size, output_size and "
            "memory_lag size the model), e.g. tasks.make_task('adding', length=50)"
        )
    cell = make_cell(preset, task.input_size, hidden_size, memory_lag=task.memory_lag, params=cell_params)
    sizes = (task.input_size, hidden_size, task.output_size)
    return SequenceModel(
        cell,
        *sizes,
        input_to_output=input_to_output,
        logistic_output=logistic_output,
        cell_joins_later=cell_joins_later,
    )
