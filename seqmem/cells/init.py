"""Initialisation schemes: each takes a cell, changes its parameters in place (without autograd)
and returns it; ``initialize`` applies one by name."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from seqmem.cells.base import RecurrentCell
from seqmem.cells.lstm import LSTMCell
from tasks.base import check_choice, check_int


def _require_forget_gate(cell: RecurrentCell, scheme: str) -> None:
    if not (isinstance(cell, LSTMCell) and cell.forget_gate):
        raise ValueError(
            f"scheme={scheme!r} is invalid for {cell.preset}: needs an LSTMCell with a forget gate"
        )


def init_default(cell: RecurrentCell) -> RecurrentCell:
    """torch.nn's default: every parameter ~ U[-1/sqrt(H), 1/sqrt(H)]; unused rows zeroed
    (the cell's ``reset_parameters``)."""
    cell.reset_parameters()
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
    f = cell.gate_rows("f")
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
    i, f = cell.gate_rows("i"), cell.gate_rows("f")
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
