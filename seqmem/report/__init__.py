"""seqmem.report: the study figures (tidy DataFrames in, matplotlib Figures out) and the HTML report.

- ``style``: one colour per cell preset (``PALETTE``) and the one theme every figure uses.
- ``figures``: gradient decay, gradient heatmap, learning curves, success vs difficulty,
  decay factor / memory horizon, LSTM internals.
- ``html``: ``render_report(study_dir)`` -> ``<study_dir>/report/index.html``.
"""

from seqmem.report.figures import (
    add_conditions,
    condition_labels,
    decay_fits,
    difficulty_column,
    gradient_decay,
    gradient_heatmap,
    learning_curves,
    lstm_internals,
    memory_horizon,
    success_vs_difficulty,
)
from seqmem.report.html import render_report, summary_table, write_report
from seqmem.report.style import CELL_ORDER, PALETTE, cell_color

__all__ = [
    "CELL_ORDER",
    "PALETTE",
    "add_conditions",
    "cell_color",
    "condition_labels",
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
