"""The LSTM cell (as ``torch.nn.LSTMCell``), with or without the forget gate."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqmem.cells.base import RecurrentCell, State, StepJacobian, TorchKernel, Transition, per_sample

__all__ = ["LSTMCell"]


class LSTMCell(RecurrentCell):
    r"""LSTM cell, as ``torch.nn.LSTMCell`` (gate rows ordered i, f, g, o).

        [a_i, a_f, a_g, a_o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
        i = \sigma(a_i),  f = \sigma(a_f),  g = tanh(a_g),  o = \sigma(a_o)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)

    ``forget_gate=False`` is the original LSTM of Hochreiter & Schmidhuber (1997), whose
    constant error carousel keeps the cell state unscaled:

        c_t = c_{t-1} + i * g

    It keeps the full 4H-row layout so torch.nn state dicts still load and every LSTM preset
    indexes its gates the same way; the f rows are zeroed at initialisation and never read
    (they get zero gradient, so Adam/RMSprop/SGD leave them at zero).  Its ``recur`` reports
    ``gates['f']`` as ones: the effective forget gate, so forget-gate products stay meaningful.

    Step Jacobian of the state (h, c), with tanh'(c_t) = 1 - tanh(c_t)^2 and a = W_hh h_{t-1}:

        dc_t/dh_{t-1} = diag(g i (1 - i)) W_i + diag(c_{t-1} f (1 - f)) W_f + diag(i (1 - g^2)) W_g
        dh_t/dh_{t-1} = diag(o tanh'(c_t)) dc_t/dh_{t-1} + diag(tanh(c_t) o (1 - o)) W_o
        dc_t/dc_{t-1} = diag(f),   dh_t/dc_{t-1} = diag(o tanh'(c_t) f)

    (W_g the gate's H x H block of W_hh; without forget gate f = 1 and its f (1 - f) term is 0.)
    """

    gate_names = ("i", "f", "g", "o")
    state_names = ("h", "c")
    n_gates = 4

    def __init__(self, input_size: int, hidden_size: int, forget_gate: bool = True) -> None:
        if not isinstance(forget_gate, bool):
            raise ValueError(f"forget_gate={forget_gate!r} is invalid: must be True or False")
        self.forget_gate = forget_gate
        super().__init__(input_size, hidden_size)
        # torch.nn has no LSTM without forget gate
        self._kernel = TorchKernel(nn.LSTM, input_size, hidden_size) if forget_gate else None

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """torch.nn's default; without forget gate its (unused) f rows are zeroed."""
        super().reset_parameters()
        if not self.forget_gate:
            for p in self.parameters():
                p[self.gate_rows("f")] = 0.0

    def recur(self, x_proj: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        h, c = state
        a_i, a_f, a_g, a_o = (x_proj + F.linear(h, self.weight_hh, self.bias_hh)).chunk(4, dim=1)
        i, g, o = torch.sigmoid(a_i), torch.tanh(a_g), torch.sigmoid(a_o)
        if self.forget_gate:
            f = torch.sigmoid(a_f)
            c = f * c + i * g
        else:
            f = torch.ones_like(c)
            c = c + i * g
        h = o * torch.tanh(c)
        return (h, c), {"i": i, "f": f, "g": g, "o": o}

    @torch.no_grad()
    def step_jacobian(self, step: Transition, scale: Tensor | None = None) -> StepJacobian:
        """The closed form above (times ``scale``): h columns dense, c columns diagonal."""
        i, f, g, o = (step.gates[k] for k in "ifgo")
        multiplier = per_sample(scale, i)
        squash = torch.tanh(step.new_state[1])
        to_h = o * (1 - squash.square())  # dh_t/dc_t
        # a no-forget LSTM reports f = 1, so f (1 - f) drops its (zero) f rows too
        no_o = torch.zeros_like(o)
        cell_h = torch.stack(
            [g * i * (1 - i), step.state[1] * f * (1 - f), i * (1 - g.square()), no_o], dim=-1
        )
        hidden_h = to_h[..., None] * cell_h
        hidden_h[..., 3] = squash * o * (1 - o)
        coefficients = torch.stack([hidden_h, cell_h], dim=1) * multiplier[:, None, :, None]
        dense = self.gate_jacobian_rows(coefficients)
        return StepJacobian((dense, (to_h * f * multiplier, f * multiplier)), (False, True))

    def fast_hidden_states(self, inputs: Tensor, training: bool) -> Tensor | None:
        """torch.nn's fused kernel; none for the 1997 LSTM."""
        return None if self._kernel is None else self._kernel(self, inputs, training)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, forget_gate={self.forget_gate}"
