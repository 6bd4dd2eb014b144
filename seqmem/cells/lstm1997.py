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

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqmem.cells.base import RecurrentCell, State
from tasks.base import check_choice, check_int

__all__ = ["LSTM1997Cell", "SQUASHINGS", "BIASES"]

SQUASHINGS = ("centered", "logistic_identity")
BIASES = ("all", "gates", "none")


def _squash_input(x: Tensor, squashing: str) -> Tensor:
    """g: 2 tanh(x / 2) = 4 sigmoid(x) - 2, or the sigmoid."""
    return 2 * torch.tanh(0.5 * x) if squashing == "centered" else torch.sigmoid(x)


def _squash_input_slope(x: Tensor, squashing: str) -> Tensor:
    """g'(x)."""
    if squashing == "centered":
        return 1 - torch.tanh(0.5 * x).square()
    y = torch.sigmoid(x)
    return y * (1 - y)


def _squash_state(s: Tensor, squashing: str) -> Tensor:
    """h: tanh(s / 2) = 2 sigmoid(s) - 1, or the identity."""
    return torch.tanh(0.5 * s) if squashing == "centered" else s


def _squash_state_slope(s: Tensor, squashing: str) -> Tensor:
    """h'(s)."""
    return 0.5 * (1 - torch.tanh(0.5 * s).square()) if squashing == "centered" else torch.ones_like(s)


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


def _recurrent_forward(
    cell: LSTM1997Cell, projected: np.ndarray, weight_hh: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The recurrence step by step in numpy: every step's net inputs (B, L, R), carousels s(t)
    (B, L, H) and recurrent sources y(t-1) (B, L, source_size).

    numpy, not torch: a step of these small nets is ~12 operations on arrays of a few dozen
    numbers, and torch's dispatch per operation costs several times numpy's (5x measured on the
    2-core CPU), so with torch this loop would be the whole cost of online learning."""
    batch, length, _ = projected.shape
    n_in, hidden, n_out = cell.unit_sizes
    centered = cell.squashing == "centered"
    cells = slice(n_in, n_in + hidden)
    gate_in = np.arange(hidden) // cell.block_size  # each cell's input gate column
    gate_out = n_in + hidden + gate_in
    # time-major buffers, so each step reads and writes contiguous rows
    projected = np.ascontiguousarray(projected.transpose(1, 0, 2))
    net = np.empty_like(projected)
    carousel = np.empty((length, batch, hidden), projected.dtype)
    sources = np.zeros((length + 1, batch, projected.shape[-1]), projected.dtype)
    transposed = np.ascontiguousarray(weight_hh.T)
    state = np.zeros((batch, hidden), projected.dtype)
    for t in range(length):
        step = np.dot(sources[t], transposed, out=net[t])
        step += projected[t]
        half = np.tanh(0.5 * step)
        active = sources[t + 1]  # the units' activations: gates now, cell outputs below
        np.multiply(half, 0.5, out=active)
        active += 0.5  # f(x) = (1 + tanh(x / 2)) / 2, which cannot overflow
        squashed = 2 * half[:, cells] if centered else active[:, cells]
        state = carousel[t] = state + active[:, gate_in] * squashed
        emitted = np.tanh(0.5 * state) if centered else state
        active[:, cells] = emitted * active[:, gate_out] if n_out else emitted
    return tuple(a.transpose(1, 0, 2) for a in (net, carousel, sources[:-1]))


class _TruncatedSequence(torch.autograd.Function):
    """The 1997 LSTM over whole sequences with the paper's truncated gradient, by hand.

    Forward: the recurrence (``_recurrent_forward``; without recurrent weights every net input is
    known up front and the carousels are one cumulative sum).  Backward, vectorised over time,
    because truncation leaves the carousel as the only path back: with e_y(t) = dL/dy(t) from
    the outputs,

        e_s(t) = e_y(t) y_out(t) h'(s(t)),   delta_s(t) = sum_{tau >= t} e_s(tau)   (the carousel)
        dL/dnet_c(t)   = delta_s(t) y_in(t) g'(net_c(t))
        dL/dnet_in(t)  = sum over the block's cells of delta_s(t) g(net_c(t)), times f'(net_in(t))
        dL/dnet_out(t) = sum over the block's cells of e_y(t) h(s(t)), times f'(net_out(t))
        dL/dW_hh = sum_t dL/dnet(t) y(t-1)^T   (one matmul; y(t-1) is a constant, not differentiated)

    the paper's equations 19-28 summed over the sequence.  dL/dnet(t) flows on through autograd to
    W_ih, the biases and the inputs.
    """

    @staticmethod
    def forward(ctx, projected: Tensor, weight_hh: Tensor, cell: LSTM1997Cell) -> Tensor:
        n_in, hidden, n_out = cell.unit_sizes
        if cell.recurrent:
            arrays = _recurrent_forward(cell, projected.detach().numpy(), weight_hh.detach().numpy())
            net, carousel, sources = (torch.from_numpy(a) for a in arrays)
        else:
            net, sources = projected.detach(), None
            net_in, net_c = net[..., :n_in], net[..., n_in : n_in + hidden]
            written = cell.per_cell(torch.sigmoid(net_in)) * _squash_input(net_c, cell.squashing)
            carousel = written.cumsum(dim=1)
        ctx.cell = cell
        ctx.save_for_backward(net, carousel, sources)
        output = _squash_state(carousel, cell.squashing)
        if n_out:
            output = output * cell.per_cell(torch.sigmoid(net[..., n_in + hidden :]))
        return output

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, Tensor | None, None]:
        cell: LSTM1997Cell = ctx.cell
        net, carousel, sources = ctx.saved_tensors
        n_in, hidden, n_out = cell.unit_sizes
        squashing, blocks = cell.squashing, (*grad_output.shape[:2], cell.n_blocks, cell.block_size)
        net_in, net_c, net_out = net.split(cell.unit_sizes, dim=-1)
        gate_in = torch.sigmoid(net_in)
        emitted = _squash_state(carousel, squashing)
        to_carousel = grad_output * _squash_state_slope(carousel, squashing)
        if n_out:
            gate_out = torch.sigmoid(net_out)
            to_carousel = to_carousel * cell.per_cell(gate_out)
            grad_out = (grad_output * emitted).view(blocks).sum(-1) * gate_out * (1 - gate_out)
        delta = to_carousel.flip(1).cumsum(1).flip(1)
        grad_in = (delta * _squash_input(net_c, squashing)).view(blocks).sum(-1) * gate_in * (1 - gate_in)
        grad_cells = delta * cell.per_cell(gate_in) * _squash_input_slope(net_c, squashing)
        parts = [grad_in, grad_cells] + ([grad_out] if n_out else [])
        grad_net = torch.cat(parts, dim=-1)
        grad_weight = None
        if ctx.needs_input_grad[1] and sources is not None:
            grad_weight = torch.einsum("blr,bls->rs", grad_net, sources)
        return grad_net, grad_weight, None
