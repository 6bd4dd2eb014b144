"""Recurrent cells with torch.nn's parameter layout, their initialisation schemes and the presets.

One module per cell family: ``base`` (``RecurrentCell``: the parameter layout, ``project_input``,
``recur``, torch.nn-style calls, the step Jacobian and the fast-path hooks, with the types they
use: ``Transition``, ``StepJacobian``, ``GradientBound``), ``rnn``, ``lstm``, ``gru``, ``exprnn``
and ``urnn`` (recurrent matrices that stay orthogonal / unitary) and ``lstm1997`` (the original
LSTM: memory-cell blocks, truncated gradient); ``activations`` holds the nonlinearities of the
RNN-like cells, ``init`` the initialisation schemes.  A preset names a configuration (a family and
its initialisation) that configs and studies refer to, e.g. ``make_cell("lstm_chrono", input_size,
hidden_size, memory_lag=100)``; a preset may take options of its own (``make_cell("lstm1997", 2, 4,
params={"block_size": 2})``).

Adding a cell is one class (a ``RecurrentCell`` that writes ``recur``; the step Jacobian and the
unrolled path come with it) and one ``register_preset(name, factory)``.  ``cell_names()`` lists
the presets in registration order, which the report's colours follow.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from seqmem.cells.base import RecurrentCell
from seqmem.cells.exprnn import ExpRNNCell
from seqmem.cells.gru import GRUCell
from seqmem.cells.init import (
    init_chrono,
    init_default,
    init_forget_bias,
    init_identity,
    init_names,
    init_orthogonal,
    initialize,
)
from seqmem.cells.lstm import LSTMCell
from seqmem.cells.lstm1997 import LSTM1997Cell
from seqmem.cells.rnn import RNNCell
from seqmem.cells.urnn import UnitaryRNNCell
from tasks.base import check_choice

__all__ = [
    "RecurrentCell",
    "RNNCell",
    "LSTMCell",
    "LSTM1997Cell",
    "GRUCell",
    "ExpRNNCell",
    "UnitaryRNNCell",
    "init_default",
    "init_orthogonal",
    "init_identity",
    "init_forget_bias",
    "init_chrono",
    "initialize",
    "init_names",
    "PresetFactory",
    "register_preset",
    "unregister_preset",
    "make_cell",
    "cell_names",
]

# factory(input_size, hidden_size, memory_lag, **params): memory_lag is the task's (chrono's T_max),
# or None; params are the preset's own options, if it takes any (lstm1997: its block layout)
PresetFactory = Callable[..., RecurrentCell]
_PRESETS: dict[str, PresetFactory] = {}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def register_preset(name: str, factory: PresetFactory) -> None:
    """Make ``factory(input_size, hidden_size, memory_lag)`` the cell preset ``name``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"name={name!r} is invalid: must be letters, digits, '_', '.' or '-'")
    if name in _PRESETS:
        raise ValueError(f"name={name!r} is invalid: already a preset (unregister_preset it first)")
    if not callable(factory):
        raise ValueError(
            f"factory={factory!r} is invalid: must be callable (input_size, hidden_size, memory_lag)"
        )
    _PRESETS[name] = factory


def unregister_preset(name: str) -> None:
    """Remove the preset ``name`` (see ``cell_names()``)."""
    check_choice("name", name, tuple(_PRESETS))
    del _PRESETS[name]


def cell_names() -> list[str]:
    """The registered presets, in registration order."""
    return list(_PRESETS)


def make_cell(
    preset: str,
    input_size: int,
    hidden_size: int,
    *,
    memory_lag: int | None = None,
    params: Mapping[str, Any] | None = None,
) -> RecurrentCell:
    """The cell named ``preset`` (see ``cell_names()``); ``memory_lag`` is chrono's T_max, ``params``
    the preset's own options (keyword arguments of its factory)."""
    check_choice("preset", preset, tuple(_PRESETS))
    params = dict(params or {})
    try:
        cell = _PRESETS[preset](input_size, hidden_size, memory_lag, **params)
    except TypeError as error:  # an option the factory does not take
        if not params:
            raise
        raise ValueError(f"params={params!r} is invalid for preset {preset!r}: {error}") from None
    if not isinstance(cell, RecurrentCell):
        raise ValueError(f"preset={preset!r} is invalid: its factory returned {cell!r}, not a RecurrentCell")
    cell.preset = preset
    return cell


def _chrono_lstm(input_size: int, hidden_size: int, memory_lag: int | None) -> RecurrentCell:
    if memory_lag is None:
        raise ValueError("memory_lag=None is invalid for preset 'lstm_chrono': must be an integer >= 2")
    return init_chrono(LSTMCell(input_size, hidden_size), t_max=memory_lag)


register_preset("rnn", lambda i, h, _: RNNCell(i, h, "tanh"))
register_preset("relu_rnn", lambda i, h, _: RNNCell(i, h, "relu"))
register_preset("irnn", lambda i, h, _: init_identity(RNNCell(i, h, "relu"), scale=1.0))
register_preset("orthogonal_rnn", lambda i, h, _: init_orthogonal(RNNCell(i, h, "tanh")))
register_preset("lstm", lambda i, h, _: init_forget_bias(LSTMCell(i, h), value=1.0))
register_preset("lstm_chrono", _chrono_lstm)
register_preset("lstm_no_forget", lambda i, h, _: LSTMCell(i, h, forget_gate=False))
register_preset("gru", lambda i, h, _: GRUCell(i, h))
register_preset("exprnn", lambda i, h, _: ExpRNNCell(i, h))
register_preset("urnn", lambda i, h, _: UnitaryRNNCell(i, h))
register_preset("lstm1997", lambda i, h, _, **params: LSTM1997Cell(i, h, **params))
