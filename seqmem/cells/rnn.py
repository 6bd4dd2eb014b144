"""The Elman RNN cell (as ``torch.nn.RNNCell``) and its hand-written backpropagation through time."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqmem.cells.base import (
    GradientBound,
    RecurrentCell,
    State,
    StepJacobian,
    TorchKernel,
    Transition,
    per_sample,
)
from tasks.base import check_choice

__all__ = ["RNNCell"]


class _RNNSequence(torch.autograd.Function):
    """Backpropagation through time by hand, for the vanilla RNN on the CPU.

        h_t = phi(a_t + W_hh h_{t-1}),   a_t = W_ih x_t + b_ih + b_hh,   h_0 = 0,   phi = tanh or relu

    Backward, with g_t = dL/dh_t from the outputs and d_t = dL/d(pre-activation at step t):

        d_T = g_T * phi'_T,   d_t = (g_t + W_hh^T d_{t+1}) * phi'_t,   dL/dW_hh = sum_t d_t h_{t-1}^T,
        dL/da_t = d_t,   phi'_t = 1 - h_t^2 (tanh) or [h_t > 0] (relu), read off the saved h_t.

    torch.nn.RNN's CPU kernel records a few autograd nodes per step and accumulates dL/dW_hh one step
    at a time.  Here each direction is one ``addmm`` and one or two element-wise operations per step,
    written into preallocated buffers, and dL/dW_hh is a single (H x BL) @ (BL x H) matmul: 1.1-1.7x
    faster per training step on 2 CPU cores (the training benchmark).  The gradient for a_t flows on
    through autograd to W_ih, both biases and the inputs.  On a GPU, cuDNN's fused kernel is faster,
    and ``RNNCell.fast_hidden_states`` uses that instead.
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


class RNNCell(RecurrentCell):
    r"""Elman RNN cell, as ``torch.nn.RNNCell``.

        h_t = \phi(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),   \phi = tanh or relu

    Step Jacobian: dh_t/dh_{t-1} = diag(\phi'_t) W_hh, with \phi' read off the output h_t:
    1 - h_t^2 (tanh) or [h_t > 0] (relu).  Both derivatives are bounded by 1, so
    ||dh_t/dh_{t-1}|| <= sigma_max(W_hh) (Pascanu et al. 2013).
    """

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh") -> None:
        check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size)
        self._kernel = TorchKernel(nn.RNN, input_size, hidden_size, nonlinearity=nonlinearity)

    def recur(self, x_proj: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        pre = x_proj + F.linear(state[0], self.weight_hh, self.bias_hh)
        h = torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)
        return (h,), {}

    @torch.no_grad()
    def step_jacobian(self, step: Transition, scale: Tensor | None = None) -> StepJacobian:
        """diag(phi'(a)) W_hh (times ``scale``), phi' from the output h_t."""
        (after,) = step.new_state
        multiplier = per_sample(scale, after)
        slope = 1 - after.square() if self.nonlinearity == "tanh" else (after > 0).to(after.dtype)
        return StepJacobian((((slope * multiplier)[..., None] * self.weight_hh.detach(),),), (False,))

    def fast_hidden_states(self, inputs: Tensor, training: bool) -> Tensor:
        """On the CPU ``_RNNSequence`` (backpropagation through time by hand), elsewhere torch.nn's
        fused kernel."""
        if inputs.device.type == "cpu":
            projected = (self.project_input(inputs) + self.bias_hh).transpose(0, 1).contiguous()
            return _RNNSequence.apply(projected, self.weight_hh, self.nonlinearity == "relu").transpose(0, 1)
        return self._kernel(self, inputs, training)

    def gradient_bound(self) -> GradientBound:
        with torch.no_grad():
            sigma_max = float(torch.linalg.matrix_norm(self.weight_hh.double(), ord=2))
        return GradientBound(self.nonlinearity, 1.0, sigma_max)  # sup |tanh'| = sup |relu'| = 1

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, nonlinearity={self.nonlinearity!r}"
