"""The GRU cell (as ``torch.nn.GRUCell``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqmem.cells.base import RecurrentCell, State, StepJacobian, TorchKernel, Transition, per_sample

__all__ = ["GRUCell"]


class GRUCell(RecurrentCell):
    r"""GRU cell, as ``torch.nn.GRUCell`` (gate rows ordered r, z, n).

        r = \sigma(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
        z = \sigma(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))
        h_t = (1 - z) * n + z * h_{t-1}

    Step Jacobian, with h_n = W_hn h_{t-1} + b_hn:

        dh_t/dh_{t-1} = diag((1 - z)(1 - n^2) h_n r (1 - r)) W_hr + diag((h_{t-1} - n) z (1 - z)) W_hz
                        + diag((1 - z)(1 - n^2) r) W_hn + diag(z)
    """

    gate_names = ("r", "z", "n")
    n_gates = 3

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self._kernel = TorchKernel(nn.GRU, input_size, hidden_size)

    def recur(self, x_proj: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        (h,) = state
        x_r, x_z, x_n = x_proj.chunk(3, dim=1)
        h_r, h_z, h_n = F.linear(h, self.weight_hh, self.bias_hh).chunk(3, dim=1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = n + z * (h - n)
        return (h,), {"r": r, "z": z, "n": n}

    @torch.no_grad()
    def step_jacobian(self, step: Transition, scale: Tensor | None = None) -> StepJacobian:
        """The closed form above (times ``scale``)."""
        (before,), r, z, n = step.state, step.gates["r"], step.gates["z"], step.gates["n"]
        multiplier = per_sample(scale, before)
        rows = self.gate_rows("n")
        h_n = F.linear(before, self.weight_hh.detach()[rows], self.bias_hh.detach()[rows])
        through_n = (1 - z) * (1 - n.square())
        coefficients = torch.stack(
            [through_n * h_n * r * (1 - r), (before - n) * z * (1 - z), through_n * r], dim=-1
        )
        (dense,) = self.gate_jacobian_rows((coefficients * multiplier[..., None])[:, None])
        dense.diagonal(dim1=-2, dim2=-1).add_(z * multiplier)
        return StepJacobian(((dense,),), (False,))

    def fast_hidden_states(self, inputs: Tensor, training: bool) -> Tensor:
        """torch.nn's fused kernel."""
        return self._kernel(self, inputs, training)
