"""The Elman RNN cell (as ``torch.nn.RNNCell``) and the hand-written backpropagation through time
that it, the expRNN and the uRNN train with."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqmem.cells.activations import RELU, TANH, Activation
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
    """Backpropagation through time by hand, for cells whose step is one matmul and a nonlinearity
    (the vanilla RNN on the CPU, the expRNN everywhere, the uRNN wherever its dense W is cheaper).

        h_t = phi(a_t + W_hh h_{t-1}; b),   a_t = W_ih x_t + b_ih + b_hh,   h_0 = 0

    phi is a ``seqmem.cells.activations.Activation`` (tanh, relu, or a modReLU with the per-unit
    bias b).  Backward, with g_t = dL/dh_t from the outputs and d_t = dL/d(pre-activation at step t):

        d_T = phi'_T^T g_T,   d_t = phi'_t^T (g_t + W_hh^T d_{t+1}),   dL/dW_hh = sum_t d_t h_{t-1}^T,
        dL/da_t = d_t,   phi'_t read off the saved h_t (1 - h_t^2 for tanh, an indicator for relu
        and the real modReLU),   dL/db = sum_t <u_t, d_t> with u_t = h_t / |h_t| per unit.

    torch.nn.RNN's CPU kernel records a few autograd nodes per step and accumulates dL/dW_hh one step
    at a time.  Here each direction is one ``addmm`` and one or two element-wise operations per step,
    written into preallocated buffers, and dL/dW_hh is a single (H x BL) @ (BL x H) matmul: 1.1-1.7x
    faster per training step on 2 CPU cores (the training benchmark).  The gradient for a_t flows on
    through autograd to W_ih, both biases and the inputs, that for W_hh to whatever W_hh is computed
    from (the expRNN's and uRNN's parametrisations).  On a GPU, cuDNN's fused kernel is faster,
    and ``RNNCell.fast_hidden_states`` uses that instead.
    """

    @staticmethod
    def forward(
        ctx, projected: Tensor, weight_hh: Tensor, activation: Activation, bias: Tensor | None
    ) -> Tensor:
        length, batch, hidden = projected.shape
        states = projected.new_empty(length + 1, batch, hidden)
        states[0] = 0
        transposed = weight_hh.t()
        for t in range(length):
            pre = torch.addmm(projected[t], states[t], transposed, out=states[t + 1])
            activation.activate_(pre, bias)
        ctx.activation = activation
        ctx.save_for_backward(weight_hh, states, bias)
        return states[1:]

    @staticmethod
    def backward(ctx, grad_states: Tensor) -> tuple[Tensor, Tensor | None, None, Tensor | None]:
        weight_hh, states, bias = ctx.saved_tensors
        length = grad_states.shape[0]
        grad_pre = torch.empty_like(states[1:])
        factors = ctx.activation.backward_factors(states[1:], bias)
        for t in range(length - 1, -1, -1):
            d = grad_pre[t]
            if t == length - 1:
                d.copy_(grad_states[t])
            else:
                torch.addmm(grad_states[t], grad_pre[t + 1], weight_hh, out=d)
            ctx.activation.backpropagate_(d, *(factor[t] for factor in factors))
        grad_weight = grad_bias = None
        if ctx.needs_input_grad[1]:
            hidden = weight_hh.shape[0]
            grad_weight = grad_pre.view(-1, hidden).t() @ states[:-1].reshape(-1, hidden)
        if ctx.needs_input_grad[3]:
            grad_bias = ctx.activation.bias_grad(grad_pre, states[1:])
        return grad_pre, grad_weight, None, grad_bias


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
        self.activation = TANH if nonlinearity == "tanh" else RELU
        super().__init__(input_size, hidden_size)
        self._kernel = TorchKernel(nn.RNN, input_size, hidden_size, nonlinearity=nonlinearity)

    def recur(self, x_proj: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        pre = x_proj + F.linear(state[0], self.weight_hh, self.bias_hh)
        return (self.activation(pre),), {}

    @torch.no_grad()
    def step_jacobian(self, step: Transition, scale: Tensor | None = None) -> StepJacobian:
        """diag(phi'(a)) W_hh (times ``scale``), phi' from the output h_t."""
        (after,) = step.new_state
        multiplier = per_sample(scale, after)
        slope = self.activation.slope(after)
        return StepJacobian((((slope * multiplier)[..., None] * self.weight_hh.detach(),),), (False,))

    def fast_hidden_states(self, inputs: Tensor, training: bool) -> Tensor:
        """On the CPU ``_RNNSequence`` (backpropagation through time by hand), elsewhere torch.nn's
        fused kernel."""
        if inputs.device.type == "cpu":
            projected = (self.project_input(inputs) + self.bias_hh).transpose(0, 1).contiguous()
            return _RNNSequence.apply(projected, self.weight_hh, self.activation, None).transpose(0, 1)
        return self._kernel(self, inputs, training)

    def gradient_bound(self) -> GradientBound:
        with torch.no_grad():
            sigma_max = float(torch.linalg.matrix_norm(self.weight_hh.double(), ord=2))
        return GradientBound(self.nonlinearity, 1.0, sigma_max)  # sup |tanh'| = sup |relu'| = 1

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, nonlinearity={self.nonlinearity!r}"
