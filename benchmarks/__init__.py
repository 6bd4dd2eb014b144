"""Benchmarks of seqmem: one module per area, each with ``run(quick) -> DataFrame`` of ratios.

A folder of the repository, not part of the installed package: run each area from the repository
root (``python -m benchmarks.training --quick``), or all of them with ``studies/performance.py``.

The one timing harness they all share is here: every side of a comparison runs in the same
rounds, back to back, so a change of machine load hits all of them alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def seconds(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timings(
    fns: dict[str, Callable[[], object]], repeats: int
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """(warm-up seconds, per-round seconds) of each function: one warm-up call each, then
    ``repeats`` rounds, the order reversed every other round."""
    warm = {name: seconds(fn) for name, fn in fns.items()}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(repeats):
        for name in list(fns)[:: 1 if round_ % 2 == 0 else -1]:
            times[name].append(seconds(fns[name]))
    return warm, times


def medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per round of each function (see ``timings``)."""
    return {name: statistics.median(values) for name, values in timings(fns, repeats)[1].items()}
