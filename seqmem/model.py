"""SequenceModel: a recurrent cell unrolled over time with a linear readout at every step.

There is one unroll loop (``SequenceModel.unroll``): the input projection of all steps is one
matmul before the loop, then the cell's recurrence runs step by step.  It serves
``return_states=True`` (the analysis needs every h_t in the autograd graph) and every cell
torch.nn has no kernel for (the 1997 LSTM without forget gate).

Otherwise ``forward`` takes the fused path: torch.nn's own RNN/LSTM/GRU kernel (``torch._VF``,
what ``torch.nn.LSTM.forward`` calls) run directly on the cell's parameter tensors, so there is
no copy that could drift and gradients land in the cell's parameters.  A vanilla RNN on the CPU
runs ``_RNNSequence`` instead, backpropagation through time by hand, which trains faster than
torch's kernel (see its docstring).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seqmem.cells import GRUCell, LSTMCell, RecurrentCell, RNNCell, make_cell
from tasks.base import Task

__all__ = ["UnrolledStates", "SequenceModel", "make_model"]


@dataclass
class UnrolledStates:
    """Per-step states of one unroll.

    h:     L tensors (B, H): the hidden state after step t, the very tensor fed to step t + 1
           and to the readout, so ``torch.autograd.grad(loss, states.h)`` is the total dL/dh_t.
    c:     the LSTM cell states, same convention; None for cells without one.
    gates: gate activations stacked over time, each (B, L, H).
    """

    h: list[Tensor]
    c: list[Tensor] | None
    gates: dict[str, Tensor]


class _RNNSequence(torch.autograd.Function):
    """Backpropagation through time by hand, for the vanilla RNN on the CPU.

        h_t = phi(a_t + W_hh h_{t-1}),   a_t = W_ih x_t + b_ih + b_hh,   h_0 = 0,   phi = tanh or relu

    Backward, with g_t = dL/dh_t from the outputs and d_t = dL/d(pre-activation at step t):

        d_T = g_T * phi'_T,   d_t = (g_t + W_hh^T d_{t+1}) * phi'_t,   dL/dW_hh = sum_t d_t h_{t-1}^T,
        dL/da_t = d_t,   phi'_t = 1 - h_t^2 (tanh) or [h_t > 0] (relu), read off the saved h_t.

    torch.nn.RNN's CPU kernel records a few autograd nodes per step and accumulates dL/dW_hh one step
    at a time.  Here each direction is one ``addmm`` and one or two element-wise operations per step,
    written into preallocated buffers, and dL/dW_hh is a single (H x BL) @ (BL x H) matmul: 1.1-1.7x
    faster per training step on 2 CPU cores (``python -m seqmem.benchmarks.training``).  The gradient
    for a_t flows on through autograd to W_ih, both biases and the inputs.  On a GPU, cuDNN's fused
    kernel is faster, and ``_fused_hidden`` uses that instead.
    """

    @staticmethod
    def forward(ctx, projected: Tensor, weight_hh: Tensor, relu: bool) -> Tensor:
        length, batch, hidden = projected.shape
        states = projected.new_empty(length + 1, batch, hidden)
        states[0] = 0
        transposed = weight_hh.t()
        for t in range(length):
            pre = torch.addmm(projected[t], states[t], transposed, out=states[t + 1])
            pre.relu_() if relu else pre.tanh_()
        ctx.relu = relu
        ctx.save_for_backward(weight_hh, states)
        return states[1:]

    @staticmethod
    def backward(ctx, grad_states: Tensor) -> tuple[Tensor, Tensor | None, None]:
        weight_hh, states = ctx.saved_tensors
        length = grad_states.shape[0]
        grad_pre = torch.empty_like(states[1:])
        for t in range(length - 1, -1, -1):
            d, h = grad_pre[t], states[t + 1]
            if t == length - 1:
                d.copy_(grad_states[t])
            else:
                torch.addmm(grad_states[t], grad_pre[t + 1], weight_hh, out=d)
            if ctx.relu:
                d.mul_(h > 0)
            else:
                d.addcmul_(d * h, h, value=-1)  # d (1 - h^2)
        grad_weight = None
        if ctx.needs_input_grad[1]:
            hidden = weight_hh.shape[0]
            grad_weight = grad_pre.view(-1, hidden).t() @ states[:-1].reshape(-1, hidden)
        return grad_pre, grad_weight, None


def _fused_hidden(cell: RecurrentCell, inputs: Tensor, train: bool) -> Tensor | None:
    """All hidden states (B, L, H) from torch.nn's fused kernel (a vanilla RNN on the CPU: from
    ``_RNNSequence``), or None if there is none for ``cell``."""
    weights = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
    # Positional flags after the weights: has_biases, num_layers, dropout, train, bidirectional, batch_first.
    flags = (True, 1, 0.0, train, False, True)
    h0 = inputs.new_zeros(1, inputs.shape[0], cell.hidden_size)
    if isinstance(cell, LSTMCell):
        return torch._VF.lstm(inputs, (h0, h0), weights, *flags)[0] if cell.forget_gate else None
    if isinstance(cell, GRUCell):
        return torch._VF.gru(inputs, h0, weights, *flags)[0]
    if isinstance(cell, RNNCell):
        if inputs.device.type == "cpu":
            projected = (cell.project_input(inputs) + cell.bias_hh).transpose(0, 1).contiguous()
            return _RNNSequence.apply(projected, cell.weight_hh, cell.nonlinearity == "relu").transpose(0, 1)
        kernel = torch._VF.rnn_tanh if cell.nonlinearity == "tanh" else torch._VF.rnn_relu
        return kernel(inputs, h0, weights, *flags)[0]
    return None


class SequenceModel(nn.Module):
    """``cell`` unrolled over the inputs, ``readout = Linear(hidden_size, output_size)`` at every step.

    ``fused=False`` forces the unroll loop everywhere (for comparisons; results are equal).
    """

    def __init__(
        self, cell: RecurrentCell, input_size: int, hidden_size: int, output_size: int, fused: bool = True
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
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        self.fused = fused
        self.preset = cell.preset

    def unroll(self, inputs: Tensor) -> UnrolledStates:
        """Run the cell over ``inputs`` (B, L, I) step by step, keeping every state and gate."""
        cell = self.cell
        state = cell.initial_state(inputs.shape[0], device=inputs.device, dtype=inputs.dtype)
        hs, cs, gates = [], [], []
        for x_proj in cell.project_input(inputs).unbind(dim=1):
            state, step_gates = cell.recur(x_proj, state)
            hs.append(state[0])
            cs.append(state[-1])
            gates.append(step_gates)
        stacked = {name: torch.stack([g[name] for g in gates], dim=1) for name in cell.gate_names}
        return UnrolledStates(h=hs, c=cs if len(cell.state_names) == 2 else None, gates=stacked)

    def forward(self, inputs: Tensor, return_states: bool = False) -> Tensor | tuple[Tensor, UnrolledStates]:
        """Outputs (B, L, output_size); with ``return_states`` also the ``UnrolledStates``."""
        if inputs.dim() != 3 or inputs.shape[1] < 1 or inputs.shape[-1] != self.input_size:
            allowed = f"(batch, length >= 1, {self.input_size})"
            raise ValueError(f"inputs shape={tuple(inputs.shape)} is invalid: must be {allowed}")
        hidden = None
        if self.fused and not return_states:
            hidden = _fused_hidden(self.cell, inputs, self.training)
        if hidden is None:
            states = self.unroll(inputs)
            hidden = torch.stack(states.h, dim=1)
        outputs = self.readout(hidden)
        return (outputs, states) if return_states else outputs


def make_model(preset: str, task: Task, hidden_size: int) -> SequenceModel:
    """A ``SequenceModel`` with cell ``preset`` sized for ``task`` (its input/output sizes; its
    ``memory_lag`` is the T_max of chrono initialisation)."""
    cell = make_cell(preset, task.input_size, hidden_size, memory_lag=task.memory_lag)
    return SequenceModel(cell, task.input_size, hidden_size, task.output_size)
