"""What every recurrent cell shares: torch.nn's parameter layout, the step split in two, torch.nn-style
calls, the per-step Jacobian the analysis multiplies, and the hooks for a fast whole-sequence path.

A cell owns ``weight_ih (G*H, I)``, ``weight_hh (G*H, H)``, ``bias_ih (G*H,)`` and ``bias_hh (G*H,)``
named, shaped and gate-ordered like torch.nn's cells, so a torch.nn state dict loads unchanged and
torch.nn's fused kernels can run on the very same tensors.  A step is split in two so a model can
project all inputs with one matmul before its time loop:

    x_proj = project_input(x) = W_ih x + b_ih          (any leading dims)
    (state_t, gates_t) = recur(x_proj_t, state_{t-1})   (the recurrence proper)

The state is a tuple of blocks named by ``state_names``, each ``(B, hidden_size)``: ``(h,)`` or
``(h, c)``.  The first block is the cell's output h_t (what a readout reads).  ``recur`` is a pure
function of its arguments (no in-place ops), so torch.func (jacrev, vmap) works on it, and
``step_jacobian`` falls back on exactly that: a new cell that only writes ``recur`` works with every
analysis function.  Families override ``step_jacobian`` with their closed form and
``fast_hidden_states`` with a fused kernel where they have one.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tasks.base import check_int, check_memory

__all__ = [
    "State",
    "Transition",
    "StepJacobian",
    "GradientBound",
    "RecurrentCell",
    "TorchKernel",
    "per_sample",
]

State = tuple[Tensor, ...]


@dataclass(frozen=True)
class Transition:
    """One step of a cell as it ran: ``recur(x_proj, state)`` returned ``(new_state, gates)``."""

    x_proj: Tensor
    state: State
    new_state: State
    gates: dict[str, Tensor]


@dataclass(frozen=True)
class StepJacobian:
    """J_t = ds_t/ds_{t-1} of the flat state s = (block_0, block_1, ...), per sample, by column blocks.

    ``columns[j]`` holds d(block_i)_t / d(block_j)_{t-1} for every row block i: dense ``(B, H_i, H_j)``
    blocks, or, where ``diagonal[j]``, the ``(B, H_j)`` diagonals of diagonal blocks (an LSTM's c
    columns: dh_t/dc_{t-1} = diag(o tanh'(c_t) f), dc_t/dc_{t-1} = diag(f)), which keep a product
    P J to one matmul per dense column.
    """

    columns: tuple[tuple[Tensor, ...], ...]
    diagonal: tuple[bool, ...]

    @property
    def sizes(self) -> list[int]:
        """The sizes of the state blocks."""
        return [column[j].shape[-1] for j, column in enumerate(self.columns)]


@dataclass(frozen=True)
class GradientBound:
    """Pascanu, Mikolov & Bengio (2013) for a step h_t = phi(W_hh h_{t-1} + ...): its Jacobian
    diag(phi') W_hh has norm at most ``derivative_bound`` (sup |phi'|) times ``sigma_max`` (W_hh's
    largest singular value), so gradients shrink at least as fast as ``bound`` per step when it is
    below 1."""

    nonlinearity: str
    derivative_bound: float
    sigma_max: float

    @property
    def bound(self) -> float:
        return self.sigma_max * self.derivative_bound


def per_sample(scale: Tensor | None, like: Tensor) -> Tensor:
    """The step Jacobian's multiplier as a (B, 1) column: ``scale`` (B,), or ones."""
    return (like.new_ones(like.shape[0]) if scale is None else scale)[:, None]


class TorchKernel:
    """torch.nn's fused whole-sequence kernel for a cell: a batch-first one-layer ``module_type``
    (torch.nn.RNN, LSTM or GRU) of the cell's sizes, built once on the meta device.  Its own weights
    are never used: calling it runs the module through ``torch.func.functional_call`` with the
    cell's own tensors, so there is no copy that could drift and gradients land in the cell's
    parameters.  A plain object, so the module is not one of the cell's submodules."""

    def __init__(
        self, module_type: type[nn.RNNBase], input_size: int, hidden_size: int, **options: str
    ) -> None:
        self.module = module_type(input_size, hidden_size, batch_first=True, device="meta", **options)

    def __call__(self, cell: RecurrentCell, inputs: Tensor, training: bool) -> Tensor:
        """All hidden states (B, L, H) of ``cell`` over ``inputs`` (B, L, I) from the zero state."""
        self.module.train(training)
        weights = {
            "weight_ih_l0": cell.weight_ih,
            "weight_hh_l0": cell.weight_hh,
            "bias_ih_l0": cell.bias_ih,
            "bias_hh_l0": cell.bias_hh,
        }
        return torch.func.functional_call(self.module, weights, (inputs,))[0]


class RecurrentCell(nn.Module, ABC):
    """Shared parameter layout, step plumbing and torch.nn-style calls; subclasses write ``recur``.

    Class attributes a family sets: ``gate_names`` (the gate blocks of the weight rows, in order;
    ``recur`` reports their activations under these names), ``state_names`` (the state blocks,
    the output h first) and ``n_gates`` (G, the row blocks of the weights).
    """

    gate_names: tuple[str, ...] = ()
    state_names: tuple[str, ...] = ("h",)
    n_gates: int = 1

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        check_int("input_size", input_size, 1)
        check_int("hidden_size", hidden_size, 1)
        self.input_size = input_size
        self.hidden_size = hidden_size
        # torch.nn's layout, G*H x (I + H + 2) numbers, sizes the check for every family
        weights = (
            self.n_gates * hidden_size * (input_size + hidden_size + 2) * torch.get_default_dtype().itemsize
        )
        check_memory("hidden_size", hidden_size, weights, f"the weights of a {type(self).__name__}")
        self.preset = type(self).__name__
        self.create_parameters()
        self.reset_parameters()

    def create_parameters(self) -> None:
        """torch.nn's layout (uninitialised; ``reset_parameters`` fills it).  A family without a
        torch.nn twin may declare its own parameters instead; it keeps ``weight_ih`` (I -> state)
        and ``weight_hh`` (the (H, H) recurrent matrix, a parameter or a parametrised tensor)."""
        rows = self.n_gates * self.hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, self.input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, self.hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(rows))
        self.bias_hh = nn.Parameter(torch.empty(rows))

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """torch.nn's default: every parameter ~ U[-1/sqrt(H), 1/sqrt(H)]."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            p.uniform_(-bound, bound)

    def gate_rows(self, gate: str) -> slice:
        """The rows of the weights and biases that feed gate ``gate``."""
        k = self.gate_names.index(gate)
        return slice(k * self.hidden_size, (k + 1) * self.hidden_size)

    def gate_jacobian_rows(self, coefficients: Tensor) -> tuple[Tensor, ...]:
        """sum_g diag(coefficients[:, r, :, g]) @ W_g for every r, as (B, H, H) blocks, where W_g is
        gate g's H x H block of W_hh (detached) and ``coefficients`` is (B, R, H, G).

        One batched matmul over units h, (R B x G) @ (G x H) with row h of every W_g, writes every
        row once: summing G scaled copies of W_hh instead would pass over the blocks 2G times.
        """
        batch, count, hidden, gates = coefficients.shape
        # (H, G, H): a strided view; bmm reads it as fast as a contiguous copy, without the copy
        by_unit = self.weight_hh.detach().view(-1, hidden, hidden).transpose(0, 1)
        flat = coefficients.permute(2, 1, 0, 3).reshape(hidden, count * batch, gates)
        rows = torch.bmm(flat, by_unit).view(hidden, count, batch, hidden)
        return tuple(rows[:, r].transpose(0, 1) for r in range(count))

    def initial_state(
        self, batch: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> State:
        """Zeros, one ``(batch, hidden_size)`` tensor per entry of ``state_names``."""
        # weight_ih: weight_hh may be computed (a parametrisation), which is not free
        dtype = dtype or self.weight_ih.dtype
        device = device or self.weight_ih.device
        return tuple(
            torch.zeros(batch, self.hidden_size, device=device, dtype=dtype) for _ in self.state_names
        )

    def project_input(self, x: Tensor) -> Tensor:
        """``x @ W_ih^T + b_ih`` for inputs of shape ``(..., input_size)``."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    @abstractmethod
    def recur(self, x_proj: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        """One step from the projected input ``(B, G*H)``: the new state and the gate activations."""

    def step(self, x: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        """One step from the raw input ``(B, I)``: the new state and the gate activations."""
        return self.recur(self.project_input(x), state)

    def forward(self, input: Tensor, hx: Tensor | State | None = None) -> Tensor | State:
        """One step, called like ``torch.nn.RNNCell``/``GRUCell`` (``hx`` = h, returns h) or
        ``torch.nn.LSTMCell`` (``hx`` = (h, c), returns (h, c)): a cell with one state block takes
        and returns a tensor, one with several a tuple.  ``hx=None`` is the zero state.  ``input``
        is ``(B, input_size)``, or unbatched ``(input_size,)`` with unbatched state blocks."""
        if input.dim() not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(
                f"input shape={tuple(input.shape)} is invalid: must be (batch, {self.input_size}) "
                f"or ({self.input_size},)"
            )
        batched = input.dim() == 2
        x = input if batched else input[None]
        if hx is None:
            state = self.initial_state(x.shape[0], device=x.device, dtype=x.dtype)
        else:
            state = self._state_from(hx, x.shape[0] if batched else None)
        new_state, _ = self.step(x, state)
        if not batched:
            new_state = tuple(block[0] for block in new_state)
        return new_state[0] if len(new_state) == 1 else new_state

    def _state_from(self, hx: Tensor | State, batch: int | None) -> State:
        """torch.nn's ``hx`` as a batched state tuple (``batch`` None: unbatched blocks)."""
        single = len(self.state_names) == 1
        blocks = (hx,) if single else hx  # torch.nn: h for RNN/GRU cells, (h, c) for the LSTM
        shape = (self.hidden_size,) if batch is None else (batch, self.hidden_size)
        if (
            not isinstance(blocks, tuple)
            or len(blocks) != len(self.state_names)
            or not all(isinstance(b, Tensor) and b.shape == shape for b in blocks)
        ):
            form = "a tensor" if single else f"a tuple ({', '.join(self.state_names)}) of tensors"
            raise ValueError(f"hx={_describe(hx)} is invalid: must be None or {form} of shape {shape}")
        return blocks if batch is not None else tuple(b[None] for b in blocks)

    @torch.no_grad()
    def step_jacobian(self, step: Transition, scale: Tensor | None = None) -> StepJacobian:
        """J_t = ds_t/ds_{t-1} of ``step``, per sample, times ``scale`` (B,) when given; no
        autograd graph is recorded.

        This generic form needs only ``recur``: ``torch.func.jacrev`` of one sample's step w.r.t.
        every state block, ``vmap``-ed over the batch; every block comes back dense.  Families
        override it with their closed forms (which the tests check against torch.func).
        """

        def one_sample(x: Tensor, *blocks: Tensor) -> State:
            return tuple(b[0] for b in self.recur(x[None], tuple(b[None] for b in blocks))[0])

        count = len(step.state)
        jacobians = torch.func.vmap(torch.func.jacrev(one_sample, argnums=tuple(range(1, count + 1))))(
            step.x_proj, *step.state
        )
        multiplier = per_sample(scale, step.x_proj)[..., None]
        columns = tuple(tuple(jacobians[i][j] * multiplier for i in range(count)) for j in range(count))
        return StepJacobian(columns, (False,) * count)

    def fast_hidden_states(self, inputs: Tensor, training: bool) -> Tensor | None:
        """All hidden states (B, L, H) over ``inputs`` (B, L, I) from the zero state by a fused
        whole-sequence path, equal to unrolling ``recur`` (outputs and gradients), or None where
        the cell has none (then the model unrolls it).  ``training``: the model's mode."""
        return None

    def orthogonal_parameters(self) -> list[nn.Parameter]:
        """The parameters through which ``weight_hh`` stays orthogonal or unitary while training
        (``TrainConfig.orthogonal_lr`` is their learning rate); none for an unconstrained cell."""
        return []

    def gradient_bound(self) -> GradientBound | None:
        """The Pascanu et al. (2013) bound of the step Jacobian, for cells whose step is
        h_t = phi(W_hh h_{t-1} + ...); None for every other form."""
        return None

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, preset={self.preset!r}"


def _describe(value: object) -> str:
    """A short description of a state argument for an error message (tensors by shape)."""
    if isinstance(value, Tensor):
        return f"tensor of shape {tuple(value.shape)}"
    if isinstance(value, tuple | list):
        return f"({', '.join(_describe(v) for v in value)})"
    return repr(value)
