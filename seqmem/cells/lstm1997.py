"""The original LSTM of Hochreiter & Schmidhuber (1997): memory-cell blocks, no forget gate, and
the paper's truncated gradient.

Section 4 and appendix A.1 of the paper, read together with the weight counts of its Table 10
(every count is reproduced by this layout; see the study ``reproduce_hochreiter1997``).

The hidden layer holds ``hidden_size`` memory cells in blocks of ``block_size``; the cells of a
block share one input gate ``in_j`` and one output gate ``out_j``.  Every cell and gate unit
receives the current input and, "hidden layer fully connected", the previous step's activations
of *all* cells and gate units.  For cell v of block j, with u(t) = [x(t), y(t-1)] its sources:

    net_c(t) = W_c u(t) [+ b_c],  y_in(t) = f(W_in u(t) [+ b_in]),  y_out(t) = f(W_out u(t) [+ b_out])
    s_v(t) = s_v(t-1) + y_in_j(t) g(net_c_v(t)),   s_v(0) = 0           (the constant error carousel)
    y_v(t) = y_out_j(t) h(s_v(t))

f is the logistic sigmoid; ``squashing='centered'`` (every experiment but 2a/2b) has
g(x) = 4 f(x) - 2 = 2 tanh(x / 2) in [-2, 2] and h(x) = 2 f(x) - 1 = tanh(x / 2) in [-1, 1];
``squashing='logistic_identity'`` (experiments 2a/2b) has g = f and h = identity.

The truncated gradient (A.1, "approximate derivatives"): d net(t) / d y(t-1) is replaced by zero
for every unit, so error reaching a cell through its net input or its gates changes their
incoming weights but flows no further back through the recurrent connections; only the carousel
carries it, with factor exactly 1 per step (d s(t) / d s(t-1) = 1).  ``recur`` implements it by
detaching the recurrent sources y(t-1), so autograd through the unroll *is* the paper's learning
rule, and this cell's step Jacobian (``torch.func`` of ``recur``) is that of the truncated
gradient: ds/ds = I, dy/ds = diag(y_out h'(s(t))), every other block zero.  ``truncated=False``
keeps the full gradient (the paper's section 6: "no significant difference").

Layout.  The weight rows are the units [input gates (n_blocks), cells (hidden_size), output
gates (n_blocks)], the recurrent sources (the columns of ``weight_hh``) [cell outputs
(hidden_size), input gates (n_blocks), output gates (n_blocks)].  One bias per unit
(``bias_ih``; there is no ``bias_hh``), on all units, the gate units only, or none.  The state is
(h, c, i, o), each (B, hidden_size): the cell outputs y, the carousels s, and per cell the
activation of its block's input and output gate (the gate units are recurrent sources, so their
last activations are state; every cell of a block holds the same value, and the recurrence reads
the block's first).  Without output gates (2a/2b) ``o`` is ones; ``recurrent=False`` (2a/2b: no
recurrent weights besides the carousel) leaves ``weight_hh`` with no columns.

Initialisation: every weight uniform in [-init_range, init_range] (the paper: 0.2 for
experiments 1 and 2, 0.1 for 3-6); ``input_gate_bias`` / ``output_gate_bias`` give each block's
gate bias, e.g. (-3, -6) for experiment 4, staggered so that the blocks start to store and to
emit at different times (section 4, "abuse problem"; Table 10); None draws them like the weights.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from seqmem.cells.base import RecurrentCell, State
from tasks.base import check_choice, check_int

__all__ = ["LSTM1997Cell", "SQUASHINGS", "BIASES"]

SQUASHINGS = ("centered", "logistic_identity")
BIASES = ("all", "gates", "none")


def _squash_input(x: Tensor, squashing: str) -> Tensor:
    """g: 2 tanh(x / 2) = 4 sigmoid(x) - 2, or the sigmoid."""
    return 2 * torch.tanh(0.5 * x) if squashing == "centered" else torch.sigmoid(x)


def _squash_state(s: Tensor, squashing: str) -> Tensor:
    """h: tanh(s / 2) = 2 sigmoid(s) - 1, or the identity."""
    return torch.tanh(0.5 * s) if squashing == "centered" else s


class LSTM1997Cell(RecurrentCell):
    """The 1997 LSTM (see the module docstring for the equations, the layout and the gradient).

    ``hidden_size`` counts memory cells; ``block_size`` must divide it.  ``bias``: 'all' units,
    the 'gates' only (experiment 1) or 'none' (experiment 2).  ``output_gate=False`` and
    ``recurrent=False`` give the net of experiments 2a/2b.
    """

    gate_names = ("i", "g", "o")
    state_names = ("h", "c", "i", "o")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        block_size: int = 1,
        squashing: str = "centered",
        output_gate: bool = True,
        recurrent: bool = True,
        bias: str = "all",
        init_range: float = 0.1,
        input_gate_bias: Sequence[float] | None = None,
        output_gate_bias: Sequence[float] | None = None,
        truncated: bool = True,
    ) -> None:
        # RecurrentCell.__init__ builds torch.nn's layout (G * H rows, two bias vectors), which
        # blocks with shared gates do not have; the rest of it is repeated here.
        nn.Module.__init__(self)
        check_int("input_size", input_size, 1)
        check_int("hidden_size", hidden_size, 1)
        check_int("block_size", block_size, 1)
        if hidden_size % block_size:
            raise ValueError(
                f"block_size={block_size!r} is invalid: must divide hidden_size={hidden_size} "
                "(the cells, in blocks of block_size)"
            )
        check_choice("squashing", squashing, SQUASHINGS)
        check_choice("bias", bias, BIASES)
        for name, flag in (("output_gate", output_gate), ("recurrent", recurrent), ("truncated", truncated)):
            if not isinstance(flag, bool):
                raise ValueError(f"{name}={flag!r} is invalid: must be True or False")
        if not (isinstance(init_range, int | float) and not isinstance(init_range, bool) and init_range > 0):
            raise ValueError(f"init_range={init_range!r} is invalid: must be a number > 0")
        self.input_size, self.hidden_size, self.block_size = input_size, hidden_size, block_size
        self.n_blocks = hidden_size // block_size
        self.squashing, self.bias, self.init_range = squashing, bias, float(init_range)
        self.output_gate, self.recurrent, self.truncated = output_gate, recurrent, truncated
        self.input_gate_bias = self._check_gate_bias("input_gate_bias", input_gate_bias, True)
        self.output_gate_bias = self._check_gate_bias("output_gate_bias", output_gate_bias, output_gate)
        n_out = self.n_blocks if output_gate else 0
        self.unit_sizes = (self.n_blocks, hidden_size, n_out)  # rows: input gates, cells, output gates
        rows = sum(self.unit_sizes)
        self.source_size = rows if recurrent else 0
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, self.source_size))
        biased = {"all": rows, "gates": self.n_blocks + n_out, "none": 0}[bias]
        self.bias_ih = nn.Parameter(torch.empty(biased)) if biased else None
        self.preset = type(self).__name__
        self.reset_parameters()

    def _check_gate_bias(
        self, name: str, values: Sequence[float] | None, present: bool
    ) -> tuple[float, ...] | None:
        if values is None:
            return None
        if not present or self.bias == "none":
            raise ValueError(f"{name}={values!r} is invalid: this cell has no such bias (must be None)")
        numbers = isinstance(values, Sequence) and not isinstance(values, str)
        if not numbers or len(values) != self.n_blocks or not all(isinstance(v, int | float) for v in values):
            raise ValueError(
                f"{name}={values!r} is invalid: must be None or {self.n_blocks} numbers, one per block"
            )
        return tuple(float(v) for v in values)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Every weight ~ U[-init_range, init_range], then the given gate biases per block."""
        for p in self.parameters():
            p.uniform_(-self.init_range, self.init_range)
        if self.bias_ih is None:
            return
        gates = self.bias_ih if self.bias == "gates" else self.bias_ih[self.gate_rows("i").start :]
        n = self.n_blocks
        if self.input_gate_bias is not None:
            gates[:n] = torch.tensor(self.input_gate_bias)
        if self.output_gate_bias is not None:
            gates[-n:] = torch.tensor(self.output_gate_bias)

    def gate_rows(self, gate: str) -> slice:
        """The rows of ``weight_ih`` / ``weight_hh`` of the input gates 'i', the cells 'g' or the
        output gates 'o'."""
        k = self.gate_names.index(gate)
        start = sum(self.unit_sizes[:k])
        return slice(start, start + self.unit_sizes[k])

    def full_bias(self) -> Tensor | None:
        """One bias per unit row (zeros for the cells when only the gates are biased), or None."""
        if self.bias != "gates":
            return self.bias_ih
        n_in = self.n_blocks
        cells = self.bias_ih.new_zeros(self.hidden_size)
        return torch.cat([self.bias_ih[:n_in], cells, self.bias_ih[n_in:]])

    def project_input(self, x: Tensor) -> Tensor:
        """``x @ W_ih^T`` plus each unit's bias, for inputs ``(..., input_size)``."""
        return F.linear(x, self.weight_ih, self.full_bias())

    def block_gates(self, per_cell: Tensor) -> Tensor:
        """(B, n_blocks): each block's gate activation, read off its first cell."""
        return per_cell[:, :: self.block_size]

    def per_cell(self, per_block: Tensor) -> Tensor:
        """(B, hidden_size): each cell's copy of its block's gate activation."""
        return per_block.repeat_interleave(self.block_size, dim=-1)

    def sources(self, state: State) -> Tensor:
        """The recurrent sources y(t-1), in the order of the units: input gates, cell outputs,
        output gates (B, source_size)."""
        h, _, i, o = state
        parts = [self.block_gates(i), h] + ([self.block_gates(o)] if self.output_gate else [])
        return torch.cat(parts, dim=-1)

    def recur(self, x_proj: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        net = x_proj
        if self.recurrent:
            sources = self.sources(state)
            # the truncation: no error flows from a net input back into y(t-1)
            net = net + F.linear(sources.detach() if self.truncated else sources, self.weight_hh)
        net_in, net_c, net_out = net.split(self.unit_sizes, dim=-1)
        i = self.per_cell(torch.sigmoid(net_in))
        o = self.per_cell(torch.sigmoid(net_out)) if self.output_gate else torch.ones_like(i)
        g = _squash_input(net_c, self.squashing)
        c = state[1] + i * g
        h = o * _squash_state(c, self.squashing)
        return (h, c, i, o), {"i": i, "g": g, "o": o}

    def fast_hidden_states(self, inputs: Tensor, training: bool) -> Tensor | None:
        """The truncated gradient by hand (``_TruncatedSequence``) on the CPU; None elsewhere and
        for the full gradient (then the model unrolls ``recur``)."""
        if not self.truncated or inputs.device.type != "cpu":
            return None
        return _TruncatedSequence.apply(self.project_input(inputs), self.weight_hh, self)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, block_size={self.block_size}, squashing={self.squashing!r}, "
            f"bias={self.bias!r}, output_gate={self.output_gate}, recurrent={self.recurrent}, "
            f"truncated={self.truncated}"
        )


def _forward_steps(
    projected: np.ndarray,
    weight_hh: np.ndarray,
    net: np.ndarray,
    carousel: np.ndarray,
    activations: np.ndarray,
    layout: tuple[int, int, int, int, bool],
) -> None:
    """The recurrence, step by step (compiled by ``_compiled``).  Time-major
    arrays: reads ``projected`` (L, B, R), the inputs' share of the net inputs, and ``weight_hh``
    (R, S; S = 0 without recurrent weights); writes every step's net inputs ``net``
    (L, B, R), carousels ``carousel`` (L, B, H) and unit activations ``activations`` (L + 1, B, R),
    whose row t + 1 holds step t's (gates f(net), cells y_v = y_out_j h(s_v)) and row 0 stays zero,
    so that row t is y(t - 1), the recurrent sources of step t."""
    n_in, hidden, n_out, block_size, centered = layout
    length, batch, rows = projected.shape
    n_sources = weight_hh.shape[1]
    for t in range(length):  # time outermost: every step reads and writes contiguous rows
        for b in range(batch):
            for r in range(rows):
                total = projected[t, b, r]
                for u in range(n_sources):
                    total += activations[t, b, u] * weight_hh[r, u]
                net[t, b, r] = total
            for r in range(rows):  # the gates; f(x) = (1 + tanh(x / 2)) / 2 cannot overflow
                if r < n_in or r >= n_in + hidden:
                    activations[t + 1, b, r] = 0.5 + 0.5 * math.tanh(0.5 * net[t, b, r])
            for v in range(hidden):
                block = v // block_size
                x = net[t, b, n_in + v]
                squashed = 2.0 * math.tanh(0.5 * x) if centered else 0.5 + 0.5 * math.tanh(0.5 * x)
                state = (carousel[t - 1, b, v] if t > 0 else 0.0) + activations[t + 1, b, block] * squashed
                carousel[t, b, v] = state
                emitted = math.tanh(0.5 * state) if centered else state
                if n_out:
                    emitted *= activations[t + 1, b, n_in + hidden + block]
                activations[t + 1, b, n_in + v] = emitted


def _backward_steps(
    grad_y: np.ndarray,
    net: np.ndarray,
    carousel: np.ndarray,
    activations: np.ndarray,
    grad_net: np.ndarray,
    grad_weight: np.ndarray,
    layout: tuple[int, int, int, int, bool],
) -> None:
    """The truncated gradient (``_TruncatedSequence``'s equations), from the last step back
    (compiled by ``_compiled``).  Reads dL/dy ``grad_y`` (L, B, H) and the forward's arrays;
    writes dL/dnet ``grad_net`` (L, B, R, zeros on entry) and adds dL/dW_hh to ``grad_weight``
    (R, S, zeros on entry)."""
    n_in, hidden, n_out, block_size, centered = layout
    length, batch, rows = net.shape
    n_sources = grad_weight.shape[1]
    delta = np.zeros((batch, hidden), dtype=np.float64)  # the carousel's error, summed from the end back
    for t in range(length - 1, -1, -1):
        for b in range(batch):
            for v in range(hidden):
                block = v // block_size
                gate_out = activations[t + 1, b, n_in + hidden + block] if n_out else 1.0
                state = carousel[t, b, v]
                emitted = math.tanh(0.5 * state) if centered else state
                slope = 0.5 * (1.0 - emitted * emitted) if centered else 1.0
                delta[b, v] += grad_y[t, b, v] * gate_out * slope
                if n_out:
                    grad_net[t, b, n_in + hidden + block] += grad_y[t, b, v] * emitted
                x = net[t, b, n_in + v]
                if centered:
                    half = math.tanh(0.5 * x)
                    squashed, squashed_slope = 2.0 * half, 1.0 - half * half
                else:
                    squashed = 0.5 + 0.5 * math.tanh(0.5 * x)
                    squashed_slope = squashed * (1.0 - squashed)
                grad_net[t, b, n_in + v] = delta[b, v] * activations[t + 1, b, block] * squashed_slope
                grad_net[t, b, block] += delta[b, v] * squashed
            for r in range(rows):  # the gates' f'(net) = f (1 - f)
                if r < n_in or r >= n_in + hidden:
                    gate = activations[t + 1, b, r]
                    grad_net[t, b, r] *= gate * (1.0 - gate)
            for r in range(rows):
                for u in range(n_sources):
                    grad_weight[r, u] += grad_net[t, b, r] * activations[t, b, u]


@functools.cache
def _compiled(steps: Callable[..., None]) -> Callable[..., None]:
    # Compiled, because a step of these small nets is a few dozen multiply-adds: as torch or numpy
    # operations each cost more in dispatch than in arithmetic, and online learning (one sequence
    # per update) paid for little else.  numba is imported and compiles on first use (a second or
    # two; cache=True keeps the machine code on disk for later processes), not on `import seqmem`.
    import numba

    return numba.njit(cache=True)(steps)


class _TruncatedSequence(torch.autograd.Function):
    """The 1997 LSTM over whole sequences with the paper's truncated gradient, by hand.

    Forward: the recurrence, step by step (``_forward_steps``).  Backward: truncation leaves the
    carousel as the only path back, so with e_y(t) = dL/dy(t) from the outputs

        e_s(t) = e_y(t) y_out(t) h'(s(t)),   delta_s(t) = sum_{tau >= t} e_s(tau)   (the carousel)
        dL/dnet_c(t)   = delta_s(t) y_in(t) g'(net_c(t))
        dL/dnet_in(t)  = sum over the block's cells of delta_s(t) g(net_c(t)), times f'(net_in(t))
        dL/dnet_out(t) = sum over the block's cells of e_y(t) h(s(t)), times f'(net_out(t))
        dL/dW_hh = sum_t dL/dnet(t) y(t-1)^T   (y(t-1) is a constant, not differentiated)

    the paper's equations 19-28 summed over the sequence (``_backward_steps``).  dL/dnet(t) flows
    on through autograd to W_ih, the biases and the inputs.  Both run compiled on numpy views of
    CPU tensors, time-major.
    """

    @staticmethod
    def forward(ctx, projected: Tensor, weight_hh: Tensor, cell: LSTM1997Cell) -> Tensor:
        n_in, hidden, _ = cell.unit_sizes
        projected = np.ascontiguousarray(projected.detach().numpy().transpose(1, 0, 2))
        length, batch, rows = projected.shape
        net = np.empty_like(projected)
        carousel = np.empty((length, batch, hidden), projected.dtype)
        activations = np.zeros((length + 1, batch, rows), projected.dtype)
        weight = np.ascontiguousarray(weight_hh.detach().numpy())
        _compiled(_forward_steps)(projected, weight, net, carousel, activations, _layout(cell))
        ctx.cell = cell
        ctx.save_for_backward(*(torch.from_numpy(a) for a in (net, carousel, activations)))
        cells = activations[1:, :, n_in : n_in + hidden].transpose(1, 0, 2)
        return torch.from_numpy(np.ascontiguousarray(cells))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, Tensor | None, None]:
        cell: LSTM1997Cell = ctx.cell
        net, carousel, activations = (t.numpy() for t in ctx.saved_tensors)
        grad_y = np.ascontiguousarray(grad_output.numpy().transpose(1, 0, 2), dtype=net.dtype)
        grad_net = np.zeros_like(net)
        grad_weight = np.zeros((net.shape[-1], cell.source_size), net.dtype)
        _compiled(_backward_steps)(grad_y, net, carousel, activations, grad_net, grad_weight, _layout(cell))
        grad_weight = torch.from_numpy(grad_weight) if ctx.needs_input_grad[1] else None
        return torch.from_numpy(grad_net.transpose(1, 0, 2)), grad_weight, None


def _layout(cell: LSTM1997Cell) -> tuple[int, int, int, int, bool]:
    """The kernels' ``layout`` of ``cell``: its input gates, cells and output gates (rows of
    ``weight_ih``), block size, and whether g and h are the centred squashings."""
    return (*cell.unit_sizes, cell.block_size, cell.squashing == "centered")
