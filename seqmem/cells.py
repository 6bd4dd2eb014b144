"""Recurrent cells with torch.nn's parameter layout, their initialisation schemes and presets.

Every cell owns ``weight_ih (G*H, I)``, ``weight_hh (G*H, H)``, ``bias_ih (G*H,)`` and
``bias_hh (G*H,)`` named, shaped and gate-ordered exactly like ``torch.nn.RNNCell`` /
``LSTMCell`` / ``GRUCell`` (LSTM gates i, f, g, o; GRU r, z, n), so a torch.nn state dict
loads unchanged and the fused torch.nn kernels can run on the very same tensors.

A step is split in two so the model can project all inputs with one matmul before the time
loop: ``project_input(x) = x @ W_ih^T + b_ih`` (any leading dims) and
``recur(x_proj, state) -> (new_state, gates)``, the per-step recurrence.  Both are pure
functions of their arguments (no in-place ops), so torch.func (jacrev, vmap) works on them.

State is always a tuple: ``(h,)`` for RNN/GRU, ``(h, c)`` for LSTM.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tasks.base import check_choice, check_int

__all__ = [
    "RecurrentCell",
    "RNNCell",
    "LSTMCell",
    "GRUCell",
    "init_default",
    "init_orthogonal",
    "init_identity",
    "init_forget_bias",
    "init_chrono",
    "initialize",
    "init_names",
    "make_cell",
    "cell_names",
]

State = tuple[Tensor, ...]


class RecurrentCell(nn.Module):
    """Shared parameter layout and step plumbing; subclasses implement ``recur``."""

    gate_names: tuple[str, ...] = ()
    state_names: tuple[str, ...] = ("h",)
    n_gates: int = 1

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        check_int("input_size", input_size, 1)
        check_int("hidden_size", hidden_size, 1)
        self.input_size = input_size
        self.hidden_size = hidden_size
        rows = self.n_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(rows))
        self.bias_hh = nn.Parameter(torch.empty(rows))
        self.preset = type(self).__name__
        init_default(self)

    def initial_state(
        self, batch: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> State:
        """Zeros, one ``(batch, hidden_size)`` tensor per entry of ``state_names``."""
        dtype = dtype or self.weight_hh.dtype
        device = device or self.weight_hh.device
        return tuple(
            torch.zeros(batch, self.hidden_size, device=device, dtype=dtype) for _ in self.state_names
        )

    def project_input(self, x: Tensor) -> Tensor:
        """``x @ W_ih^T + b_ih`` for inputs of shape ``(..., input_size)``."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def recur(self, x_proj: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        """One step from the projected input ``(B, G*H)``: the new state and the gate activations."""
        raise NotImplementedError

    def step(self, x: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        """One step from the raw input ``(B, I)``: the new state and the gate activations."""
        return self.recur(self.project_input(x), state)

    def forward(self, x: Tensor, state: State) -> State:
        return self.step(x, state)[0]

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, preset={self.preset!r}"


class RNNCell(RecurrentCell):
    r"""Elman RNN cell, as ``torch.nn.RNNCell``.

    h_t = \phi(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),   \phi = tanh or relu
    """

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh") -> None:
        check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size)

    def recur(self, x_proj: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        pre = x_proj + F.linear(state[0], self.weight_hh, self.bias_hh)
        h = torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)
        return (h,), {}

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, nonlinearity={self.nonlinearity!r}"


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
    (they get zero gradient, so Adam/RMSprop/SGD leave them at zero).  Its ``step`` reports
    ``gates['f']`` as ones: the effective forget gate, so forget-gate products stay meaningful.
    """

    gate_names = ("i", "f", "g", "o")
    state_names = ("h", "c")
    n_gates = 4

    def __init__(self, input_size: int, hidden_size: int, forget_gate: bool = True) -> None:
        if not isinstance(forget_gate, bool):
            raise ValueError(f"forget_gate={forget_gate!r} is invalid: must be True or False")
        self.forget_gate = forget_gate
        super().__init__(input_size, hidden_size)

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

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, forget_gate={self.forget_gate}"


class GRUCell(RecurrentCell):
    r"""GRU cell, as ``torch.nn.GRUCell`` (gate rows ordered r, z, n).

    r = \sigma(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z = \sigma(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))
    h_t = (1 - z) * n + z * h_{t-1}
    """

    gate_names = ("r", "z", "n")
    n_gates = 3

    def recur(self, x_proj: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        (h,) = state
        x_r, x_z, x_n = x_proj.chunk(3, dim=1)
        h_r, h_z, h_n = F.linear(h, self.weight_hh, self.bias_hh).chunk(3, dim=1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = n + z * (h - n)
        return (h,), {"r": r, "z": z, "n": n}


# -- initialisation schemes ----------------------------------------------------------------------
# Each takes a cell, changes its parameters in place (without autograd) and returns it.


def _gate_rows(cell: RecurrentCell, gate: str) -> slice:
    k = cell.gate_names.index(gate)
    return slice(k * cell.hidden_size, (k + 1) * cell.hidden_size)


def _require_forget_gate(cell: RecurrentCell, scheme: str) -> None:
    if not (isinstance(cell, LSTMCell) and cell.forget_gate):
        raise ValueError(
            f"scheme={scheme!r} is invalid for {cell.preset}: needs an LSTMCell with a forget gate"
        )


@torch.no_grad()
def init_default(cell: RecurrentCell) -> RecurrentCell:
    """torch.nn's default: every parameter ~ U[-1/sqrt(H), 1/sqrt(H)]; unused rows zeroed."""
    bound = 1.0 / math.sqrt(cell.hidden_size)
    for p in cell.parameters():
        p.uniform_(-bound, bound)
    if isinstance(cell, LSTMCell) and not cell.forget_gate:
        for p in cell.parameters():
            p[_gate_rows(cell, "f")] = 0.0
    return cell


@torch.no_grad()
def init_orthogonal(cell: RecurrentCell, gain: float = 1.0) -> RecurrentCell:
    """Each gate's H x H block of W_hh a random orthogonal matrix times ``gain``
    (Saxe, McClelland & Ganguli 2014; Henaff, Szlam & LeCun 2016)."""
    for block in cell.weight_hh.split(cell.hidden_size, dim=0):
        nn.init.orthogonal_(block, gain=gain)
    return cell


@torch.no_grad()
def init_identity(cell: RecurrentCell, scale: float = 1.0) -> RecurrentCell:
    """Each gate's block of W_hh = ``scale`` * I and all biases zero; with a ReLU RNN this is
    the IRNN of Le, Jaitly & Hinton (2015).  W_ih keeps its initialisation."""
    for block in cell.weight_hh.split(cell.hidden_size, dim=0):
        block.copy_(scale * torch.eye(cell.hidden_size))
    cell.bias_ih.zero_()
    cell.bias_hh.zero_()
    return cell


@torch.no_grad()
def init_forget_bias(cell: RecurrentCell, value: float = 1.0) -> RecurrentCell:
    """Total forget-gate bias b_ih,f + b_hh,f = ``value`` (Gers et al. 2000; Jozefowicz et al. 2015).
    torch adds both biases, so the value goes in ``bias_hh`` and ``bias_ih``'s f rows are zeroed."""
    _require_forget_gate(cell, "forget_bias")
    f = _gate_rows(cell, "f")
    cell.bias_ih[f] = 0.0
    cell.bias_hh[f] = value
    return cell


@torch.no_grad()
def init_chrono(cell: RecurrentCell, t_max: int) -> RecurrentCell:
    """Chrono initialisation (Tallec & Ollivier 2018): b_f ~ log U[1, t_max - 1], b_i = -b_f,
    so the forget gates' characteristic times spread over [1, t_max - 1].
    As in ``init_forget_bias`` the values go in ``bias_hh``; ``bias_ih``'s i and f rows are zeroed,
    so the bias sum torch computes is exactly the drawn value.  Uses torch's global RNG."""
    _require_forget_gate(cell, "chrono")
    check_int("t_max", t_max, 2)
    b_f = torch.empty(cell.hidden_size).uniform_(1.0, t_max - 1.0).log_()
    i, f = _gate_rows(cell, "i"), _gate_rows(cell, "f")
    cell.bias_ih[i] = 0.0
    cell.bias_ih[f] = 0.0
    cell.bias_hh[f] = b_f
    cell.bias_hh[i] = -b_f
    return cell


INIT_SCHEMES: dict[str, Callable[..., RecurrentCell]] = {
    "default": init_default,
    "orthogonal": init_orthogonal,
    "identity": init_identity,
    "forget_bias": init_forget_bias,
    "chrono": init_chrono,
}


def init_names() -> list[str]:
    return list(INIT_SCHEMES)


def initialize(cell: RecurrentCell, scheme: str, **options: float) -> RecurrentCell:
    """Apply the initialisation scheme named ``scheme`` (see ``init_names()``) with its options."""
    check_choice("scheme", scheme, tuple(INIT_SCHEMES))
    return INIT_SCHEMES[scheme](cell, **options)


# -- presets ----------------------------------------------------------------------------------------


def _chrono_lstm(input_size: int, hidden_size: int, memory_lag: int | None) -> RecurrentCell:
    if memory_lag is None:
        raise ValueError("memory_lag=None is invalid for preset 'lstm_chrono': must be an integer >= 2")
    return init_chrono(LSTMCell(input_size, hidden_size), t_max=memory_lag)


_PRESETS: dict[str, Callable[[int, int, int | None], RecurrentCell]] = {
    "rnn": lambda i, h, _: RNNCell(i, h, "tanh"),
    "relu_rnn": lambda i, h, _: RNNCell(i, h, "relu"),
    "irnn": lambda i, h, _: init_identity(RNNCell(i, h, "relu"), scale=1.0),
    "orthogonal_rnn": lambda i, h, _: init_orthogonal(RNNCell(i, h, "tanh")),
    "lstm": lambda i, h, _: init_forget_bias(LSTMCell(i, h), value=1.0),
    "lstm_chrono": _chrono_lstm,
    "lstm_no_forget": lambda i, h, _: LSTMCell(i, h, forget_gate=False),
    "gru": lambda i, h, _: GRUCell(i, h),
}


def cell_names() -> list[str]:
    return list(_PRESETS)


def make_cell(
    preset: str, input_size: int, hidden_size: int, *, memory_lag: int | None = None
) -> RecurrentCell:
    """The cell named ``preset`` (see ``cell_names()``); ``memory_lag`` is chrono's T_max."""
    check_choice("preset", preset, tuple(_PRESETS))
    cell = _PRESETS[preset](input_size, hidden_size, memory_lag)
    cell.preset = preset
    return cell
