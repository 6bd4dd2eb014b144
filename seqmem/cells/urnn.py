r"""The unitary RNN cell of Arjovsky, Shah & Bengio (2016): a complex hidden state evolved by a
product of cheap unitary factors."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from seqmem.cells.activations import COMPLEX_MODRELU
from seqmem.cells.base import RecurrentCell, State, StepJacobian, Transition, per_sample
from seqmem.cells.rnn import _RNNSequence

__all__ = ["UnitaryRNNCell"]

# Above this many complex units the dense fast path's O(N^2) matmuls cost more, on a CPU, than the
# plain unroll through the O(N log N) factors: training steps at T = 100, batch 20, one core
# (2026-11-29): 256 units dense 193 ms vs factored 336; 512 units dense 719 ms vs factored 434.
DENSE_MAX_UNITS = 384


class UnitaryRNNCell(RecurrentCell):
    r"""uRNN (Arjovsky, Shah & Bengio 2016).  N = hidden_size / 2 complex units; the state h in C^N
    is the real vector (Re h, Im h) of size hidden_size, which is what the readout, the model and
    the analysis see (so every Jacobian is a real (hidden_size x hidden_size) matrix).

        h_t = modReLU(W h_{t-1} + V x_t; b),   modReLU(z; b) = relu(|z| + b) z / |z|  (per unit)
        W = D_3 R_2 F^{-1} D_2 Pi R_1 F D_1

    D_k = diag(exp(i theta_k)) (``phases[k - 1]``), R_k = I - 2 v_k v_k^* / ||v_k||^2 a complex
    reflection (``reflections[k - 1]`` = (Re v_k, Im v_k)), F the unitary discrete Fourier
    transform (``torch.fft`` with norm='ortho'), Pi a fixed random permutation (``permutation``,
    a buffer).  W is unitary for every value of its 7N parameters, so it stays unitary while
    training, and applying it costs O(N log N).  V (``weight_ih``, rows (Re V, Im V)) is the
    paper's real input map; the readout of (Re h, Im h) is its real output map.  No input bias.

    Initialisation, the paper's section 3.4: V Glorot-uniform, U[+-sqrt(6 / (input_size + N))];
    b = 0 (the nonlinearity starts silent: a linear unitary map plus the input); reflection
    coordinates U[-1, 1]; theta U[-pi, pi].  The paper also learns h_0; here h_0 = 0, as for every
    seqmem cell.

    Step Jacobian: per unit, with u = z / |z| and s = (|z| + b) / |z| on active units (|z| + b > 0),
    dh/dz = s I + (1 - s) u u^T as a 2 x 2 real block (0 on inactive units), times the real form
    [[Re W, -Im W], [Im W, Re W]] of W (``weight_hh``).  With b = 0 every block is I and the
    products are unitary: norm 1 at every lag.  modReLU's derivative is unbounded as |z| -> 0
    (s = 1 + b / |z|), so there is no Pascanu-style bound.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        if isinstance(hidden_size, int) and hidden_size % 2:
            raise ValueError(
                f"hidden_size={hidden_size!r} is invalid for the uRNN: must be even "
                "(the real and imaginary parts of hidden_size / 2 complex units)"
            )
        super().__init__(input_size, hidden_size)

    @property
    def complex_units(self) -> int:
        """N, the number of complex units."""
        return self.hidden_size // 2

    def create_parameters(self) -> None:
        units = self.complex_units
        self.weight_ih = nn.Parameter(torch.empty(self.hidden_size, self.input_size))
        self.register_parameter("bias_ih", None)  # project_input: V x only
        self.modrelu_bias = nn.Parameter(torch.empty(units))
        self.phases = nn.Parameter(torch.empty(3, units))
        self.reflections = nn.Parameter(torch.empty(2, 2 * units))
        self.register_buffer("permutation", torch.arange(units))

    @torch.no_grad()
    def reset_parameters(self) -> None:
        bound = math.sqrt(6 / (self.input_size + self.complex_units))
        self.weight_ih.uniform_(-bound, bound)
        self.modrelu_bias.zero_()
        self.phases.uniform_(-math.pi, math.pi)
        self.reflections.uniform_(-1.0, 1.0)
        self.permutation.copy_(torch.randperm(self.complex_units))

    def orthogonal_parameters(self) -> list[nn.Parameter]:
        return [self.phases, self.reflections]

    def _reflect(self, z: Tensor, k: int) -> Tensor:
        """R_k z for rows z (B, N): z - 2 (v^* z) v / ||v||^2."""
        v = torch.complex(*self.reflections[k].unflatten(-1, (2, -1)))
        return z - (2 / v.abs().square().sum()) * (z @ v.conj())[:, None] * v

    def unitary(self, state: Tensor) -> Tensor:
        """W h for real states (B, 2N) = (Re h, Im h), in O(N log N) per row, with autograd."""
        diagonals = torch.polar(torch.ones_like(self.phases), self.phases)
        z = torch.complex(*state.unflatten(-1, (2, -1)).unbind(-2)) * diagonals[0]
        z = self._reflect(torch.fft.fft(z, norm="ortho"), 0)[:, self.permutation] * diagonals[1]
        z = self._reflect(torch.fft.ifft(z, norm="ortho"), 1) * diagonals[2]
        return torch.cat([z.real, z.imag], dim=-1)

    @property
    def weight_hh(self) -> Tensor:
        """W as the real (2N x 2N) matrix [[Re W, -Im W], [Im W, Re W]] acting on (Re h, Im h): the
        factors applied to the identity's columns, with autograd (the fast path's dense form)."""
        identity = torch.eye(self.hidden_size, dtype=self.phases.dtype, device=self.phases.device)
        return self.unitary(identity).t()

    def recur(self, x_proj: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        return (COMPLEX_MODRELU(x_proj + self.unitary(state[0]), self.modrelu_bias),), {}

    @torch.no_grad()
    def step_jacobian(self, step: Transition, scale: Tensor | None = None) -> StepJacobian:
        """The closed form above (times ``scale``), from the pre-activation z recomputed."""
        pre = step.x_proj + self.unitary(step.state[0])
        # s, 0 on inactive units (|z| + b <= 0, or z = 0, where autograd's derivative is 0 too)
        stretch = COMPLEX_MODRELU.scale(pre, self.modrelu_bias) * (COMPLEX_MODRELU.modulus(pre) > 0)
        active = (stretch > 0).to(pre.dtype)
        u = COMPLEX_MODRELU.direction(pre)  # (B, 2, N)
        multiplier = per_sample(scale, pre)
        # blocks[b, i, j] = d(part i of h) / d(part j of z), i, j in (Re, Im), per unit
        blocks = (1 - stretch)[:, None, None] * u[:, :, None] * u[:, None, :]
        blocks += stretch[:, None, None] * torch.eye(2, dtype=pre.dtype)[..., None]
        blocks *= (active * multiplier)[:, None, None]
        real_form = self.weight_hh.unflatten(0, (2, -1))  # (2, N, 2N): rows of Re, Im
        dense = torch.einsum("bijn,jnm->binm", blocks, real_form).flatten(1, 2)
        return StepJacobian(((dense,),), (False,))

    def fast_hidden_states(self, inputs: Tensor, training: bool) -> Tensor | None:
        """``_RNNSequence`` with W's dense real form, built once per call from the factors (N FFTs).
        On a CPU one ``addmm`` per step beats the ~10 kernel launches of the factored product up to
        ``DENSE_MAX_UNITS`` complex units; above that (the paper's 512 on adding) None: the model
        unrolls ``recur``, O(N log N) per step.  The gradient for W flows on to the factors by
        autograd."""
        if inputs.device.type == "cpu" and self.complex_units > DENSE_MAX_UNITS:
            return None
        projected = self.project_input(inputs).transpose(0, 1).contiguous()
        hidden = _RNNSequence.apply(projected, self.weight_hh, COMPLEX_MODRELU, self.modrelu_bias)
        return hidden.transpose(0, 1)
