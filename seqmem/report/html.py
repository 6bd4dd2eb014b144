"""The study report: every figure as PNG + SVG and one self-contained ``report/index.html``.

``render_report(study_dir)`` loads a study folder with ``seqmem.results.load_study`` and calls
``write_report(frames, study_info, out_dir)``, which works on in-memory frames (so it is testable
without a study on disk).  A figure without data, or one that fails, becomes a note in the page:
the report itself never fails because one picture cannot be drawn.
"""

from __future__ import annotations

import base64
import html
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from seqmem.analysis.scheme import upgrade_probe_rows
from seqmem.io import atomic_write
from seqmem.report.conditions import add_conditions, config_columns, format_value, model_labels
from seqmem.report.fit_figures import decay_fits, memory_horizon
from seqmem.report.gradient_figures import (
    connectivity_heatmap,
    gradient_decay,
    gradient_heatmap,
    lstm_internals,
)
from seqmem.report.literature import literature_section
from seqmem.report.style import cell_color, cell_order
from seqmem.report.tables import html_table
from seqmem.report.training_figures import learning_curves, success_vs_difficulty
from seqmem.results import load_study

__all__ = [
    "CSS",
    "FigureSpec",
    "figure_section",
    "render_report",
    "summary_table",
    "write_report",
]


class StudyFramesLike(Protocol):
    """What the report reads: ``seqmem.results.load_study``'s result, or any object like it."""

    runs: pd.DataFrame
    metrics: pd.DataFrame
    analysis: pd.DataFrame


@dataclass(frozen=True)
class FigureSpec:
    key: str
    title: str
    caption: str
    needs: str  # what the figure needs, shown when it is skipped
    draw: Callable[[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame | None], Figure | None]


_FIGURES = (
    FigureSpec(
        "gradient_decay",
        "1. Gradient decay across time",
        "Norm of ∂L/∂h_t against the lag from the reference output step, at initialisation and after "
        "training. Lines: geometric mean over seeds; bands: ±1 standard error over seeds. "
        "Dashed: the Pascanu et al. (2013) bound g₀·bᵏ for tanh/ReLU RNNs.",
        "grad_norm probe rows at phase init or final",
        lambda runs, metrics, analysis, fits: gradient_decay(analysis),
    ),
    FigureSpec(
        "gradient_heatmap",
        "2. Where memory appears during training",
        "log₁₀ ‖∂L/∂h_t‖ by training step (rows) and lag (columns), averaged over seeds, one panel "
        "per cell, one colour scale.",
        "grad_norm probe rows",
        lambda runs, metrics, analysis, fits: gradient_heatmap(analysis),
    ),
    FigureSpec(
        "learning_curves",
        "3. Learning curves",
        "Evaluation loss divided by the memoryless baseline loss, against training sequences seen. "
        "Below the dotted line at 1 the model uses memory.",
        "metrics with loss_ratio",
        lambda runs, metrics, analysis, fits: learning_curves(metrics),
    ),
    FigureSpec(
        "success_vs_difficulty",
        "4. Success vs difficulty",
        "Fraction of seeds that solved the task, and the median final loss / baseline, against the "
        "task parameter that varies in the study (failed runs excluded).",
        "a task parameter (delay, length, ...) that varies across runs",
        lambda runs, metrics, analysis, fits: success_vs_difficulty(runs),
    ),
    FigureSpec(
        "memory_horizon",
        "5. Decay factor and memory horizon",
        "Per-step decay factor exp(−1/τ) of a robust fit log‖∂L/∂h_t‖ ≈ a − k/τ, and the memory "
        "horizon (lag where the norm falls below 10⁻⁶ of its lag-0 value), per run (dots) and as "
        "the mean with a 95% CI; hollow: at initialisation, filled: after training; ×: Pascanu bound.",
        "seqmem.analysis.fit_decay and grad_norm probe rows at init or final",
        lambda runs, metrics, analysis, fits: memory_horizon(fits),
    ),
    FigureSpec(
        "lstm_internals",
        "6. LSTM internals",
        "Forget-gate activations (median, q10–q90) by lag, and the cell-state path (solid) against the "
        "hidden-state path (dashed) for the cells that have a cell state.",
        "LSTM runs with gate_f or cell-path probe rows",
        lambda runs, metrics, analysis, fits: lstm_internals(analysis),
    ),
    FigureSpec(
        "connectivity",
        "7. Connectivity of outputs to earlier inputs",
        "Norm of the Jacobian of the output at step t′ with respect to the input at step t (Madsen 2019), "
        "output step (rows) × input step (columns), at initialisation and after training: the fainter "
        "far from the diagonal, the sooner the cell forgets. Batch mean, geometric mean over seeds; "
        "one colour scale from the 2nd to the 98th percentile.",
        "connectivity probe rows: add 'connectivity' to the study's ProbeConfig quantities",
        lambda runs, metrics, analysis, fits: connectivity_heatmap(analysis),
    ),
)


def _frame(frames: StudyFramesLike, name: str) -> pd.DataFrame:
    frame = getattr(frames, name, None)
    return frame if isinstance(frame, pd.DataFrame) else pd.DataFrame()


def _median_by(fits: pd.DataFrame, keys: list[str], phase: str, column: str) -> pd.Series:
    rows = fits[fits["phase"] == phase].replace([np.inf], np.nan)
    return rows.groupby(keys, observed=True)[column].median().rename(f"{column}_{phase}")


def summary_table(frames: StudyFramesLike, fits: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per condition and cell: runs, solved, diverged, failed, median final loss_ratio
    (over the runs that neither failed nor diverged), and the median fitted decay factor /
    memory horizon at init and final.

    ``frames`` has ``.runs`` (and ``.analysis``, used to fit the decay when ``fits`` is None).
    Decay columns are NaN when no fit is available.
    """
    runs = _frame(frames, "runs")
    if fits is None:
        fits = _fits_or_none(add_conditions(upgrade_probe_rows(_frame(frames, "analysis")), runs))
    return _summary(runs, fits)


def _summary(runs: pd.DataFrame, fits: pd.DataFrame | None) -> pd.DataFrame:
    columns = [
        "condition",
        "cell",
        "runs",
        "solved",
        "diverged",
        "failed",
        "median_final_loss_ratio",
        "decay_factor_init",
        "decay_factor_final",
        "memory_horizon_init",
        "memory_horizon_final",
    ]
    if runs.empty or "cell" not in runs:
        return pd.DataFrame(columns=columns)
    if "condition" not in runs:
        runs = add_conditions(runs, runs) if "run_id" in runs else runs.assign(condition="all runs")
    status = runs["status"] if "status" in runs else pd.Series("", index=runs.index)
    solved = runs["solved"].astype("boolean").fillna(False) if "solved" in runs else status == "solved"
    finished = status != "failed"
    # a diverged run's last loss (1e24, NaN) says only that it diverged: counted, not averaged
    learned = finished & (status != "diverged")
    ratio = runs["final_loss_ratio"].where(learned) if "final_loss_ratio" in runs else np.nan
    table = (
        runs.assign(
            _solved=solved.astype(int),
            _diverged=(status == "diverged").astype(int),
            _failed=(status == "failed").astype(int),
            _ratio=ratio,
        )
        .groupby(["condition", "cell"], observed=True)
        .agg(
            runs=("cell", "size"),
            solved=("_solved", "sum"),
            diverged=("_diverged", "sum"),
            failed=("_failed", "sum"),
            median_final_loss_ratio=("_ratio", "median"),
        )
    )
    if fits is not None and not fits.empty and "condition" not in fits and "run_id" in fits:
        fits = fits.join(runs.set_index("run_id")["condition"], on="run_id")
    for column in ("decay_factor", "memory_horizon"):
        for phase in ("init", "final"):
            usable = fits is not None and not fits.empty and "condition" in fits
            table[f"{column}_{phase}"] = (
                _median_by(fits, ["condition", "cell"], phase, column) if usable else np.nan
            )
    table = table.reset_index()
    order = {c: i for i, c in enumerate(cell_order(table["cell"]))}
    table = table.sort_values(["condition", "cell"], key=lambda s: s.map(order) if s.name == "cell" else s)
    return table[columns].reset_index(drop=True)


def _fits_or_none(analysis: pd.DataFrame) -> pd.DataFrame | None:
    """Decay fits, or None (with a warning) when the fit cannot run."""
    try:
        return decay_fits(analysis)
    except Exception as error:  # a broken fit must not take the whole report down
        warnings.warn(f"decay fits skipped: {type(error).__name__}: {error}", stacklevel=2)
        return None


# --------------------------------------------------------------------------- HTML


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1150px; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; margin-top: 2.2rem; }
.meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; font-size: 0.9rem; margin: 0.5rem 0; }
th, td { padding: 0.3rem 0.7rem; border-bottom: 1px solid #e5e5e5; text-align: right; }
th { background: #f6f6f6; } td:first-child, th:first-child, td:nth-child(2) { text-align: left; }
.swatch-cell { white-space: nowrap; }
figure { margin: 1rem 0 2rem; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.92rem; max-width: 60rem; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.5rem 0.8rem; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; border-radius: 2px; margin-right: 0.35em;
          vertical-align: -0.1em; }
pre { background: #f6f6f6; padding: 0.8rem; overflow-x: auto; font-size: 0.85rem; }
"""


def _summary_html(table: pd.DataFrame) -> str:
    if table.empty:
        return '<p class="note">No runs found.</p>'
    shown = table.copy()
    # The cell's swatch ties the table to the figures' colours.
    shown["cell"] = [
        f'<span class="swatch-cell"><span class="swatch" style="background:{cell_color(c)}"></span>'
        f"{html.escape(c)}</span>"
        for c in shown["cell"]
    ]
    shown["condition"] = shown["condition"].astype(str).map(html.escape)
    shown.columns = [c.replace("_", " ") for c in shown.columns]
    return html_table(shown, escape=False)


def _shared_settings(runs: pd.DataFrame) -> pd.DataFrame:
    """Config columns with one value across all runs (the study's fixed settings)."""
    rows = [
        (c, format_value(runs[c].iloc[0])) for c in config_columns(runs) if runs[c].map(repr).nunique() == 1
    ]
    return pd.DataFrame(rows, columns=["setting", "value"])


def _study_json_html(study_info: dict[str, Any]) -> str:
    """study.json as text, its per-run grid summarised (one config per run would drown the page)."""
    shown = {k: v for k, v in study_info.items() if k != "grid"}
    text = f"<pre>{html.escape(json.dumps(shown, indent=2, sort_keys=True, default=str))}</pre>"
    if "grid" in study_info:
        text += f"<p>The grid: {len(study_info['grid'])} runs (each run's config is in study.json).</p>"
    return text


def _trouble_table(runs: pd.DataFrame, problems: pd.DataFrame | None) -> str:
    """The runs that failed (with the last line of their error) and the files that could not be
    read (run id, path, what is wrong), so that no run disappears from the report unexplained."""
    failed = runs[runs["status"] == "failed"] if "status" in runs else runs.iloc[:0]
    rows = [
        {"run": run_id, "what": "failed", "detail": (str(error).strip().splitlines() or [""])[-1]}
        for run_id, error in zip(failed["run_id"], failed.get("error", [None] * len(failed)), strict=True)
    ]
    if problems is not None:
        rows += [
            {"run": r.run_id or "(study)", "what": r.problem, "detail": r.path} for r in problems.itertuples()
        ]
    if not rows:
        return ""
    return "<h2>Failed and unreadable runs</h2>\n" + html_table(pd.DataFrame(rows))


def _save(fig: Figure, out_dir: Path, key: str) -> bytes:
    """Write <key>.png (150 dpi) and <key>.svg; return the PNG bytes for inlining."""
    # No bbox_inches="tight": the constrained layout already fits the margins, at half the cost;
    # and it is solved once, for the SVG: the PNG keeps the axes where that draw put them.
    atomic_write(out_dir / f"{key}.svg", lambda temp: fig.savefig(temp, format="svg"))
    fig.set_layout_engine("none")
    atomic_write(out_dir / f"{key}.png", lambda temp: fig.savefig(temp, format="png", dpi=150))
    return (out_dir / f"{key}.png").read_bytes()


def figure_section(spec: FigureSpec, frames: tuple, out_dir: Path) -> str:
    title = f"<h3>{html.escape(spec.title)}</h3>"
    try:
        fig = spec.draw(*frames)
    except Exception as error:  # one broken figure must not take the whole report down
        warnings.warn(f"report figure {spec.key} failed: {type(error).__name__}: {error}", stacklevel=2)
        return f'{title}<p class="note">Not drawn: {html.escape(f"{type(error).__name__}: {error}")}</p>'
    if fig is None:
        needs = html.escape(spec.needs)
        return f'{title}<p class="note">Not drawn: this study has no data for it (needs {needs}).</p>'
    png = _save(fig, out_dir, spec.key)
    encoded = base64.b64encode(png).decode("ascii")
    return (
        f'{title}<figure><img alt="{html.escape(spec.title)}" src="data:image/png;base64,{encoded}">'
        f"<figcaption>{html.escape(spec.caption)} "
        f'<a href="{spec.key}.svg">SVG</a> · <a href="{spec.key}.png">PNG</a></figcaption></figure>'
    )


def write_report(frames: StudyFramesLike, study_info: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """Draw every figure into ``out_dir`` (PNG + SVG) and write ``out_dir/index.html``; return its path.

    ``frames`` has ``.runs``, ``.metrics``, ``.analysis`` (``seqmem.results.load_study``);
    ``study_info`` is the study's ``study.json`` content (name, preset, grid), shown verbatim.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # a chunker's runs are coloured and named as their model, not as their levels' cell
    runs, metrics, analysis = (
        frame.assign(cell=model_labels(frame)) if "cell" in frame else frame
        for frame in (_frame(frames, "runs"), _frame(frames, "metrics"), _frame(frames, "analysis"))
    )
    metrics = add_conditions(metrics, runs)
    analysis = add_conditions(upgrade_probe_rows(analysis), runs)
    runs = add_conditions(runs, runs)
    fits = _fits_or_none(analysis)
    name = str(study_info.get("name", out_dir.parent.name))
    sections = [figure_section(spec, (runs, metrics, analysis, fits), out_dir) for spec in _FIGURES]
    counts = runs["status"].value_counts().rename_axis("status").reset_index() if "status" in runs else None
    summary = _summary(runs, fits)
    literature = literature_section(frames, study_info) or ""  # reproduction studies only
    fits_note = (
        ""
        if fits is not None
        else '<p class="note">Decay fits unavailable (seqmem.analysis.fit_decay could not run).</p>'
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>seqmem report: {html.escape(name)}</title>
<style>{CSS}</style></head><body>
<h1>seqmem study: {html.escape(name)}</h1>
<p class="meta">preset <b>{html.escape(str(study_info.get("preset", "?")))}</b> · {len(runs)} runs ·
generated {datetime.now().strftime("%Y-%m-%d %H:%M")}</p>
<h2>Runs</h2>
{html_table(counts) if counts is not None and not counts.empty else '<p class="note">No runs found.</p>'}
{_trouble_table(runs, getattr(frames, "problems", None))}
<h2>Summary per cell</h2>
<p>Counts of runs; the median final loss / memoryless baseline over finished runs; the median fitted
per-step decay factor of ‖∂L/∂h_t‖ and memory horizon (steps) at initialisation and after training.</p>
{fits_note}{_summary_html(summary)}
{literature}
<h2>Figures</h2>
{"".join(sections)}
<h2>Configuration</h2>
<h3>Settings shared by all runs</h3>
{html_table(_shared_settings(runs)) if not runs.empty else ""}
<h3>study.json</h3>
{_study_json_html(study_info)}
</body></html>
"""
    index = out_dir / "index.html"
    atomic_write(index, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return index


def render_report(study_dir: str | os.PathLike) -> Path:
    """Render ``<study_dir>/report/index.html`` (+ PNG/SVG figures) from a study folder; return its path."""
    frames = load_study(study_dir)  # study.json too: a damaged one is a warning naming it, not a crash
    return write_report(frames, frames.info, Path(study_dir) / "report")
