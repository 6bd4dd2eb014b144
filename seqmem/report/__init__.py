"""seqmem.report: the study figures (tidy DataFrames in, matplotlib Figures out) and the HTML report.

- ``style``: one colour per cell preset (``PALETTE``) and the one theme every figure uses.
- ``conditions``: which settings tell runs apart (``condition_labels``, ``difficulty_column``).
- ``gradient_figures``: gradient decay by lag, gradient heatmap, connectivity heatmap, LSTM
  internals.
- ``training_figures``: learning curves, success vs difficulty.
- ``fit_figures``: decay fits per run (``decay_fits``), decay factor / memory horizon.
- ``common``, ``ticks``: what the figures share (the frames they read, log10 axes).
- ``html``: ``render_report(study_dir)`` -> ``<study_dir>/report/index.html``; ``literature``:
  the paper-vs-seqmem tables of reproduction studies; ``tables``: DataFrames as HTML.
"""

from seqmem.report.conditions import add_conditions, condition_labels, difficulty_column
from seqmem.report.fit_figures import decay_fits, memory_horizon
from seqmem.report.gradient_figures import (
    connectivity_heatmap,
    gradient_decay,
    gradient_heatmap,
    lstm_internals,
)
from seqmem.report.html import render_report, summary_table, write_report
from seqmem.report.style import CELL_ORDER, PALETTE, cell_color
from seqmem.report.training_figures import learning_curves, success_vs_difficulty

__all__ = [
    "CELL_ORDER",
    "PALETTE",
    "add_conditions",
    "cell_color",
    "condition_labels",
    "connectivity_heatmap",
    "decay_fits",
    "difficulty_column",
    "gradient_decay",
    "gradient_heatmap",
    "learning_curves",
    "lstm_internals",
    "memory_horizon",
    "render_report",
    "success_vs_difficulty",
    "summary_table",
    "write_report",
]
