r"""The expRNN cell: an RNN whose recurrent matrix stays orthogonal while it trains."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrizations

from seqmem.cells.activations import MODRELU
from seqmem.cells.base import GradientBound, RecurrentCell, State, StepJacobian, Transition, per_sample
from seqmem.cells.rnn import _RNNSequence
from tasks.base import check_choice

__all__ = ["ExpRNNCell", "skew_blocks"]

ORTHOGONAL_MAPS = ("matrix_exp", "cayley")
SKEW_INITS = ("henaff", "cayley")


def skew_blocks(size: int, init: str) -> Tensor:
    r"""A random skew-symmetric (size, size) matrix A of 2 x 2 blocks [[0, -a_k], [a_k, 0]] on the
    diagonal (an odd size leaves the last unit 0), from torch's global RNG:

        henaff   a_k ~ U(-pi, pi): expm(A) rotates each plane by a_k, angles uniform on the circle
                 (Henaff, Szlam & LeCun 2016)
        cayley   a_k = -sqrt((1 - cos u) / (1 + cos u)) = -tan(u / 2), u ~ U(0, pi / 2)
                 (Helfrich, Willmott & Ye 2018), as Lezcano-Casado & Martinez-Rubio (2019) use it
    """
    check_choice("init", init, SKEW_INITS)
    count = size // 2
    if init == "henaff":
        angles = torch.empty(count).uniform_(-math.pi, math.pi)
    else:
        u = torch.empty(count).uniform_(0.0, math.pi / 2)
        angles = -torch.sqrt((1 - torch.cos(u)) / (1 + torch.cos(u)))
    skew = torch.zeros(size, size)
    even = torch.arange(count) * 2
    skew[even + 1, even] = angles
    skew[even, even + 1] = -angles
    return skew


class ExpRNNCell(RecurrentCell):
    r"""expRNN (Lezcano-Casado & Martinez-Rubio 2019): an RNN with an orthogonal recurrent matrix
    parametrised by the exponential map, and the modReLU nonlinearity.

        h_t = modReLU(W_ih x_t + W_hh h_{t-1}; b),   modReLU(z; b) = sign(z) relu(|z| + b)
        W_hh = expm(A)  (``orthogonal_map='cayley'``: (I - A/2)^{-1} (I + A/2)),   A = L - L^T

    L is the strictly lower triangle of the trained parameter
    ``parametrizations.weight_hh.original`` (torch.nn.utils.parametrizations.orthogonal, without
    its trivialisation base, so W_hh is exactly expm(A)): gradient steps move A, and W_hh stays
    orthogonal to float precision whatever the step.  There is no input bias; b (``modrelu_bias``)
    is the only bias.  Initialisation: A from ``skew_blocks(hidden_size, init)`` (Henaff by
    default), W_ih He-normal (std sqrt(2 / input_size)), b ~ U(-0.01, 0.01), as in the expRNN
    paper's copy-task setup.

    Step Jacobian: dh_t/dh_{t-1} = diag([h_t != 0]) W_hh (modReLU' is an indicator).  With every
    unit active it is W_hh itself, and every product of them is orthogonal: norm 1 at every lag.
    Pascanu et al.'s bound per step is sigma_max(W_hh) sup|modReLU'| = 1.
    """

    def __init__(
        self, input_size: int, hidden_size: int, orthogonal_map: str = "matrix_exp", init: str = "henaff"
    ) -> None:
        check_choice("orthogonal_map", orthogonal_map, ORTHOGONAL_MAPS)
        check_choice("init", init, SKEW_INITS)
        self.orthogonal_map, self.init = orthogonal_map, init
        self.nonlinearity = MODRELU.name
        super().__init__(input_size, hidden_size)

    def create_parameters(self) -> None:
        self.weight_ih = nn.Parameter(torch.empty(self.hidden_size, self.input_size))
        self.register_parameter("bias_ih", None)  # project_input: W_ih x only
        self.modrelu_bias = nn.Parameter(torch.empty(self.hidden_size))
        # zeros: use_trivialization=False keeps the tensor as it is as the parametrisation's original
        self.weight_hh = nn.Parameter(torch.zeros(self.hidden_size, self.hidden_size))
        parametrizations.orthogonal(self, "weight_hh", self.orthogonal_map, use_trivialization=False)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        nn.init.kaiming_normal_(self.weight_ih, nonlinearity="relu")
        self.modrelu_bias.uniform_(-0.01, 0.01)
        # A = L - L^T reads only the strictly lower triangle of the original
        self.orthogonal_parameters()[0].copy_(skew_blocks(self.hidden_size, self.init).tril(-1))

    def orthogonal_parameters(self) -> list[nn.Parameter]:
        return [self.parametrizations.weight_hh.original]

    def recur(self, x_proj: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        return (MODRELU(x_proj + F.linear(state[0], self.weight_hh), self.modrelu_bias),), {}

    @torch.no_grad()
    def step_jacobian(self, step: Transition, scale: Tensor | None = None) -> StepJacobian:
        """diag([h_t != 0]) W_hh (times ``scale``)."""
        (after,) = step.new_state
        slope = MODRELU.slope(after) * per_sample(scale, after)
        return StepJacobian(((slope[..., None] * self.weight_hh,),), (False,))

    def fast_hidden_states(self, inputs: Tensor, training: bool) -> Tensor:
        """``_RNNSequence`` on every device (torch has no fused modReLU kernel); W_hh is computed once
        and dL/dW_hh flows on through autograd to A."""
        projected = self.project_input(inputs).transpose(0, 1).contiguous()
        hidden = _RNNSequence.apply(projected, self.weight_hh, MODRELU, self.modrelu_bias)
        return hidden.transpose(0, 1)

    def gradient_bound(self) -> GradientBound:
        with torch.no_grad():
            sigma_max = float(torch.linalg.matrix_norm(self.weight_hh.double(), ord=2))
        return GradientBound(self.nonlinearity, MODRELU.derivative_bound, sigma_max)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, orthogonal_map={self.orthogonal_map!r}, init={self.init!r}"
