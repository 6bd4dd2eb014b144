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
# O(N log N) factors (``factored_hidden_states``): training steps at T = 100, batch 20, one core,
# paired medians (2026-11-30, while two sweeps shared the 2 cores): 256 units dense 0.30 s vs
# factored 0.30, 384 units 0.65 vs 0.43, 512 units 1.12 vs 0.53.
DENSE_MAX_UNITS = 256


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

    def factors(self) -> tuple[Tensor, ...]:
        """W's parameters in the form ``apply_unitary`` reads, each (N,) complex: the diagonals
        exp(i theta_k), k = 1..3, then per reflection the conjugate v_k^* and 2 v_k / ||v_k||^2
        (unbound once here: indexing them at every step would cost a backward of its own)."""
        diagonals = torch.polar(torch.ones_like(self.phases), self.phases)
        vectors = torch.complex(*self.reflections.unflatten(-1, (2, -1)).unbind(-2))
        scaled = vectors * (2 / vectors.abs().square().sum(-1, keepdim=True))
        conjugates = vectors.conj().resolve_conj()
        return (*diagonals.unbind(0), *conjugates.unbind(0), *scaled.unbind(0))

    def apply_unitary(self, z: Tensor, factors: tuple[Tensor, ...]) -> Tensor:
        """W z for complex rows z (B, N), in O(N log N) per row, with autograd; R_k z =
        z - 2 (v_k^* z) v_k / ||v_k||^2."""
        d1, d2, d3, conjugate1, conjugate2, scaled1, scaled2 = factors
        z = torch.fft.fft(z * d1, norm="ortho")
        z = (z - (z @ conjugate1)[:, None] * scaled1)[:, self.permutation] * d2
        z = torch.fft.ifft(z, norm="ortho")
        return (z - (z @ conjugate2)[:, None] * scaled2) * d3

    def unitary(self, state: Tensor) -> Tensor:
        """W h for real states (B, 2N) = (Re h, Im h)."""
        z = self.apply_unitary(COMPLEX_MODRELU.to_complex(state), self.factors())
        return COMPLEX_MODRELU.to_real(z)

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
        ``DENSE_MAX_UNITS`` complex units; above that (the paper's 512 on adding) the factored
        recurrence in the complex domain, O(N log N) per step, with W's factors built once per call
        (``factored_hidden_states``).  The gradient for W flows on to the factors by autograd."""
        if inputs.device.type == "cpu" and self.complex_units > DENSE_MAX_UNITS:
            return self.factored_hidden_states(inputs)
        projected = self.project_input(inputs).transpose(0, 1).contiguous()
        hidden = _RNNSequence.apply(projected, self.weight_hh, COMPLEX_MODRELU, self.modrelu_bias)
        return hidden.transpose(0, 1)

    def factored_hidden_states(self, inputs: Tensor) -> Tensor:
        """The hidden states (B, L, 2N) of ``recur`` unrolled with autograd, but with the state kept
        complex (no conversion to and from (Re h, Im h) at each step) and W's factors built once
        instead of at every step: at 512 complex units a training step takes 0.63 x the time of
        unrolling ``recur`` (``benchmarks.training``)."""
        projected = COMPLEX_MODRELU.to_complex(self.project_input(inputs))
        factors = self.factors()
        state = projected.new_zeros(projected.shape[0], self.complex_units)
        states = []
        for x_proj in projected.unbind(dim=1):
            state = COMPLEX_MODRELU.on_complex(x_proj + self.apply_unitary(state, factors), self.modrelu_bias)
            states.append(state)
        return COMPLEX_MODRELU.to_real(torch.stack(states, dim=1))
