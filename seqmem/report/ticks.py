"""Ticks of axes that hold log10 values.

Norms and loss ratios span many decades and are averaged over seeds in log space, so the figures
plot a ``log10`` column on a linear axis.  ``log10_axis`` makes such an axis read as a log axis of
the quantity itself: ticks where a reader of a log axis expects them, labelled 10⁻⁶ (or 0.5 for
ratios), never the logarithm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.ticker import Formatter, Locator, MaxNLocator

__all__ = ["integer_ticks", "log10_axis", "padded_limits"]


class _Log10Locator(Locator):
    """Ticks for an axis holding log10 values, where a reader of a log axis expects them: whole
    powers of ten over a wide range, 1-2-5 steps over a decade or two, round numbers (0.9, 1,
    1.1) within less than a decade."""

    def __call__(self) -> np.ndarray:
        return self.tick_values(*self.axis.get_view_interval())

    def tick_values(self, vmin: float, vmax: float) -> np.ndarray:
        vmin, vmax = sorted((float(vmin), float(vmax)))
        if vmax - vmin > 2.5:
            return MaxNLocator(nbins=7, integer=True, steps=[1, 2, 3, 5, 10]).tick_values(vmin, vmax)
        if vmax - vmin > 0.8:
            decades = 10.0 ** np.arange(math.floor(vmin), math.ceil(vmax) + 1)
            return np.log10(np.outer(decades, (1.0, 2.0, 5.0)).ravel())
        values = MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(10**vmin, 10**vmax)
        return np.log10(values[values > 0])


def _power_of_ten(k: float) -> str:
    """10ᵏ as mathtext: 10⁻⁶, or 2×10⁻⁶ between whole powers."""
    exponent = math.floor(k + 1e-9)
    mantissa = 10.0 ** (k - exponent)
    if math.isclose(mantissa, 1.0, rel_tol=1e-6):
        return f"$10^{{{exponent}}}$"
    return f"${mantissa:.2g}\\times10^{{{exponent}}}$"


class _Log10Formatter(Formatter):
    """Tick labels of an axis holding log10 values, in the quantity's own units: the numbers
    themselves (0.05, 0.5, 2000) when every tick lies in [0.001, 10⁵) and is not a whole power of
    ten, else 10ᵏ.  ``plain`` prefers numbers for whole powers too, for ratios and step counts
    that readers compare with 1 rather than read as powers."""

    def __init__(self, plain: bool = False) -> None:
        self.plain = plain

    def __call__(self, k: float, pos: int | None = None) -> str:
        return self.format_ticks([k])[0]

    def format_ticks(self, values: Sequence[float]) -> list[str]:
        values = np.asarray(values, dtype=float)
        shown = values  # the style is chosen by the ticks in view, not those the locator adds beyond
        if self.axis is not None:
            low, high = sorted(self.axis.get_view_interval())
            shown = values[(values >= low - 1e-9) & (values <= high + 1e-9)]
        in_range = np.all((shown >= -3) & (shown < 5))
        whole_powers = np.allclose(shown, np.round(shown), atol=1e-9)
        if in_range and (self.plain or not whole_powers):
            return [f"{n:.0f}" if n >= 1000 else f"{n:.3g}" for n in 10.0**values]
        return [_power_of_ten(k) for k in values]


def log10_axis(axis: Axis, plain: bool = False) -> None:
    """Show an axis of log10 values as a log axis of the quantity (see ``_Log10Locator``,
    ``_Log10Formatter``)."""
    axis.set_major_locator(_Log10Locator())
    axis.set_major_formatter(_Log10Formatter(plain))


def padded_limits(log_values: pd.Series | np.ndarray, pad: float = math.log10(3.0)) -> tuple[float, float]:
    """Limits of a log10 axis: the data's range and a factor (3) beyond either end."""
    return float(np.min(log_values)) - pad, float(np.max(log_values)) + pad


def integer_ticks(ax: Axes, axis: str = "x") -> None:
    """Lags and steps are whole numbers: no 2.5 on their ticks."""
    getattr(ax, f"{axis}axis").set_major_locator(MaxNLocator(integer=True))
