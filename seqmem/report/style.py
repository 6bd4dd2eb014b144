"""The one figure style of seqmem: a fixed colour per cell preset and a seaborn theme.

Colours come from the Okabe & Ito (2008) and Paul Tol palettes, chosen so that the
ten presets stay apart under simulated protan-, deutan- and tritanopia (smallest
pairwise CIELAB distance about 15 on a white background, colorspacious's CVD model at
full severity).  The RNN family, its remedies included (IRNN, orthogonal RNN, and the
expRNN and uRNN whose recurrent matrices stay orthogonal / unitary, in the darkest
reds), is warm (reds, orange, pink), the gated cells are cool (blues, green), so a
reader sees the two families before reading the legend.

Figures are built on ``matplotlib.figure.Figure`` (not pyplot): no global figure
registry, no GUI backend needed, nothing to close, and the theme is applied through
``styled`` so importing seqmem never changes the caller's rcParams.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import ParamSpec, TypeVar

import matplotlib as mpl
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from seqmem.cells import cell_names

__all__ = [
    "CELL_ORDER",
    "PALETTE",
    "PHASE_LABELS",
    "cell_color",
    "cell_order",
    "new_figure",
    "palette",
    "by_cell",
    "styled",
]

CELL_ORDER: tuple[str, ...] = tuple(cell_names())  # the presets' own order: RNN family, then gated
PALETTE: dict[str, str] = {
    "rnn": "#D55E00",  # vermillion: the classic tanh RNN, the one that forgets
    "relu_rnn": "#E69F00",  # orange
    "irnn": "#CC79A7",  # reddish purple
    "orthogonal_rnn": "#882255",  # wine
    "lstm": "#0072B2",  # blue
    "lstm_chrono": "#56B4E9",  # sky blue
    "lstm_no_forget": "#332288",  # indigo: the 1997 LSTM
    "gru": "#009E73",  # bluish green
    "exprnn": "#B2182B",  # deep red: stays orthogonal while training
    "urnn": "#661100",  # dark brown-red: stays unitary
    "lstm1997": "#6A3D9A",  # purple: the 1997 LSTM as the paper built it (blocks, truncated gradient)
}
CHUNKER_COLOR = "#999933"  # olive: Schmidhuber's chunker, ``chunker(<cell>)`` whatever its levels' cell
# Presets invented after this file: neutral greys, still distinct from each other.
_EXTRA_COLORS = ("#555555", "#999999", "#222222", "#BBBBBB")
PHASE_LABELS: dict[str, str] = {
    "init": "at initialisation",
    "train": "during training",
    "final": "after training",
}

_RC = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "legend.title_fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "lines.linewidth": 1.8,
    "svg.fonttype": "none",  # keep SVG text as text (searchable, small)
}


def cell_order(cells: Iterable[str]) -> list[str]:
    """The presets present in ``cells``, in the canonical order (unknown ones last, sorted)."""
    present = set(cells)
    return [c for c in CELL_ORDER if c in present] + sorted(present - set(CELL_ORDER))


def cell_color(cell: str) -> str:
    """The fixed colour of a cell preset (hex)."""
    if cell in PALETTE:
        return PALETTE[cell]
    if cell.startswith("chunker("):
        return CHUNKER_COLOR
    # Stable across runs (not hash(), which is salted per process).
    return _EXTRA_COLORS[sum(map(ord, cell)) % len(_EXTRA_COLORS)]


def palette(cells: Iterable[str]) -> dict[str, str]:
    """``{cell: colour}`` for seaborn's ``palette=`` argument, so every figure maps a preset to
    the same colour whichever presets it shows."""
    return {c: cell_color(c) for c in cells}


def by_cell(cells: Iterable[str]) -> dict[str, object]:
    """The seaborn arguments that colour data by cell preset in ``cells``' order, without a
    legend (figures draw one shared legend)."""
    cells = list(cells)
    return {"hue": "cell", "hue_order": cells, "palette": palette(cells), "legend": False}


P = ParamSpec("P")
R = TypeVar("R")


def styled(func: Callable[P, R]) -> Callable[P, R]:
    """Build the figure inside the seqmem theme, leaving the global rcParams untouched."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with sns.axes_style("whitegrid"), sns.plotting_context("paper"), mpl.rc_context(_RC):
            return func(*args, **kwargs)

    return wrapper


def new_figure(
    nrows: int, ncols: int, *, panel: tuple[float, float] = (4.0, 3.0), **kwargs: object
) -> tuple[Figure, np.ndarray]:
    """A ``Figure`` with an ``nrows x ncols`` grid of axes (always a 2-D array), sized per panel."""
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes
