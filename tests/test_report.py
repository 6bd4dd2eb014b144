"""Tests for seqmem.report: palette, figures and the HTML report, on synthetic tidy frames.

The synthetic study follows the frames of seqmem.results.load_study with known truths: every
probe profile is g0 * f**lag with a per-seed factor 10**offset, offsets (-0.3, 0.1, 0.2): their
mean is 0 (so the geometric mean over seeds is exactly f**lag) but their median is not (so a
median or an arithmetic mean would be caught); solve counts and decay factors are set per cell.
"""

import colorsys
import dataclasses
import json
import math
import re
import types
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.collections import PathCollection, PolyCollection, QuadMesh
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure
from scipy import stats

from seqmem import results
from seqmem.analysis import PROBE_COLUMNS, upgrade_probe_rows
from seqmem.config import TrainConfig
from seqmem.io import save_checkpoint
from seqmem.report import conditions, fit_figures, gradient_figures, html, ticks, training_figures
from seqmem.report.style import CELL_ORDER, PALETTE, PHASE_LABELS, cell_color

CELLS = ("rnn", "lstm", "gru")
LENGTHS = (30, 120)  # 120 sorts before 30 as text: conditions must be ordered numerically
SEEDS = (0, 1, 2)
DECAY = {
    ("rnn", "init"): 0.80,
    ("rnn", "train"): 0.82,
    ("rnn", "final"): 0.85,
    ("lstm", "init"): 0.97,
    ("lstm", "train"): 0.98,
    ("lstm", "final"): 0.99,
    ("gru", "init"): 0.95,
    ("gru", "train"): 0.96,
    ("gru", "final"): 0.98,
}
BOUND = {"init": 1.05, "final": 1.2}  # Pascanu factor b of the rnn runs
PHASE_STEPS = (("init", 0), ("train", 50), ("final", 100))
SOLVED_SEEDS = {"rnn": (1, 0), "lstm": (3, 3), "gru": (2, 1)}  # the first n seeds solve, per length
FINAL_RATIO = {"rnn": 1.0, "lstm": 0.01, "gru": 0.1}
GATE_F = {"median": 0.9, "mean": 0.88, "q10": 0.7, "q90": 0.98, "saturated": 0.1}


SEED_LOG_OFFSET = (-0.3, 0.1, 0.2)


def seed_factor(seed: int) -> float:
    return 10 ** SEED_LOG_OFFSET[seed]


def run_id(cell: str, length: int, seed: int) -> str:
    return f"{cell}-L{length}-s{seed}"


def config(cell: str, length: int, seed: int) -> dict:
    return {
        "task": "adding",
        "variant": "arjovsky2016",
        "length": length,
        "cell": cell,
        "hidden_size": 16,
        "optimizer": "adam",
        "lr": 1e-3,
        "batch_size": 32,
        "max_steps": 100,
        "seed": seed,
        "device": "cpu",
    }


def probe_rows(cell: str, length: int, seed: int) -> pd.DataFrame:
    """A run's probe rows in the scheme of seqmem.analysis.COLUMNS (columns left out are missing)."""
    rows = []
    lags = np.arange(length)
    for phase, step in PHASE_STEPS:
        base = dict(step=step, sequences_seen=32 * step, phase=phase)
        for lag in lags:
            t = int(length - 1 - lag)
            value = seed_factor(seed) * DECAY[cell, phase] ** lag
            rows.append(
                {**base, "quantity": "grad_norm", "t": t, "lag": int(lag), "stat": "mean", "value": value}
            )
            # a decoy: figures must read the 'mean' statistic of grad_norm, not this one
            rows.append(
                {
                    **base,
                    "quantity": "grad_norm",
                    "t": t,
                    "lag": int(lag),
                    "stat": "median",
                    "value": 5 * value,
                }
            )
            if cell == "lstm":
                rows.append(
                    {
                        **base,
                        "quantity": "cell_jacobian_spectral",
                        "t": t,
                        "lag": int(lag),
                        "stat": "mean",
                        "value": seed_factor(seed) * 0.995**lag,
                    }
                )
                rows.append(
                    {
                        **base,
                        "quantity": "jacobian_spectral",
                        "t": t,
                        "lag": int(lag),
                        "stat": "mean",
                        "value": seed_factor(seed) * 0.9**lag,
                    }
                )
                rows += [
                    {**base, "quantity": "gate_f", "t": t, "lag": int(lag), "stat": stat, "value": v}
                    for stat, v in GATE_F.items()
                ]
        if cell == "rnn" and phase in BOUND:
            rows.append({**base, "quantity": "gradient_bound", "value": BOUND[phase]})
    frame = pd.DataFrame(rows)
    if length <= CONNECTIVITY_LENGTH:
        frame = pd.concat([frame, connectivity_rows(cell, length, seed)], ignore_index=True)
    return frame.reindex(columns=PROBE_COLUMNS).astype(
        {"phase": "str", "quantity": "str", "stat": "str", "t": "Int64", "lag": "Int64", "k": "Int64"}
        | {"sample": "Int64", "n": "Int64"}
    )


# Connectivity rows only for the short sequences: a heatmap of 120 x 120 steps adds nothing here.
CONNECTIVITY_LENGTH = 40


def connectivity_value(cell: str, phase: str, seed: int, t: np.ndarray, lag: np.ndarray, length: int):
    """Fades with the lag and (more slowly) with the input step, so a transposed heatmap is caught."""
    return seed_factor(seed) * DECAY[cell, phase] ** lag * 2.0 ** (-t / length)


def connectivity_rows(cell: str, length: int, seed: int) -> pd.DataFrame:
    output, t = np.tril_indices(length)  # every input step t <= output step
    lag = output - t
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "step": step,
                    "sequences_seen": 32 * step,
                    "phase": phase,
                    "quantity": "connectivity",
                    "t": t,
                    "lag": lag,
                    "stat": "mean",
                    "value": connectivity_value(cell, phase, seed, t, lag, length),
                }
            )
            for phase, step in PHASE_STEPS
            if phase != "train"
        ],
        ignore_index=True,
    )


def make_frames(cells=CELLS, lengths=LENGTHS):
    runs, metrics, analysis = [], [], []
    for cell in cells:
        for position, length in enumerate(lengths):
            for seed in SEEDS:
                rid, cfg = run_id(cell, length, seed), config(cell, length, seed)
                diverged = (cell, position, seed) == ("rnn", 1, 2)
                solved = seed < SOLVED_SEEDS[cell][position]
                status = "diverged" if diverged else "solved" if solved else "budget_exhausted"
                runs.append(
                    {
                        "run_id": rid,
                        "status": status,
                        "steps": 100,
                        "sequences_seen": 3200,
                        "diverged_step": 60 if diverged else None,
                        "elapsed_s": 1.0,
                        "final_loss": 0.1,
                        "final_loss_ratio": FINAL_RATIO[cell] * seed_factor(seed),
                        "solved": solved,
                        "error": None,
                        **cfg,
                    }
                )
                steps = np.arange(0, 101, 25)
                target = FINAL_RATIO[cell] * seed_factor(seed)
                metrics.append(
                    pd.DataFrame(
                        {
                            "run_id": rid,
                            "step": steps,
                            "sequences_seen": 32 * steps,
                            "loss": 0.5,
                            "loss_ratio": target ** (steps / 100),
                            "accuracy": 0.5,
                            "train_loss": 0.5,
                            "grad_norm": 1.0,
                            "grad_norm_max": 2.0,
                            "elapsed_s": steps / 100,
                            "solved": False,
                            **cfg,
                        }
                    )
                )
                analysis.append(probe_rows(cell, length, seed).assign(run_id=rid, **cfg))
    if "gru" in cells:  # a run that raised: in runs only, counted as failed, never as unsolved
        runs.append(
            {
                "run_id": "gru-failed",
                "status": "failed",
                "steps": None,
                "sequences_seen": None,
                "diverged_step": None,
                "elapsed_s": 0.1,
                "solved": False,
                "error": "Traceback ...\nBoom",
                **config("gru", 120, 3),
            }
        )
    return types.SimpleNamespace(
        runs=pd.DataFrame(runs),
        metrics=pd.concat(metrics, ignore_index=True),
        analysis=pd.concat(analysis, ignore_index=True),
    )


def with_conditions(frames):
    return types.SimpleNamespace(
        runs=conditions.add_conditions(frames.runs, frames.runs),
        metrics=conditions.add_conditions(frames.metrics, frames.runs),
        analysis=conditions.add_conditions(frames.analysis, frames.runs),
    )


@pytest.fixture(scope="module")
def frames():
    return with_conditions(make_frames())


@pytest.fixture(scope="module")
def fits(frames):
    """What decay_fits returns: one row per run and phase, here with the exact decay factors."""
    runs = frames.runs[frames.runs["status"] != "failed"]
    rows = [
        {
            "run_id": r.run_id,
            "cell": r.cell,
            "condition": r.condition,
            "phase": phase,
            "decay_factor": DECAY[r.cell, phase] * (0.99, 1.0, 1 / 0.99)[r.seed],
            "memory_horizon": np.inf if r.cell == "lstm" and phase == "final" else 50.0 * (r.seed + 1),
            "gradient_bound": BOUND[phase] if r.cell == "rnn" else np.nan,
        }
        for r in runs.itertuples()
        for phase in ("init", "final")
    ]
    return pd.DataFrame(rows)


def solid_lines(ax):
    return [line for line in ax.get_lines() if line.get_linestyle() == "-" and len(line.get_xdata()) > 1]


def line_of(ax, cell, linestyle="-"):
    matches = [
        line
        for line in ax.get_lines()
        if to_hex(line.get_color()) == PALETTE[cell].lower() and line.get_linestyle() == linestyle
    ]
    assert len(matches) == 1, f"expected one {linestyle!r} line for {cell}, found {len(matches)}"
    return matches[0]


def markers_of(ax, cell, marker="o", fillstyle="full"):
    """(x, y) of the markers of ``cell``'s one marker line (pointplot puts NaN at other cells' x)."""
    matches = [
        line
        for line in ax.get_lines()
        if to_hex(line.get_color()) == PALETTE[cell].lower()
        and line.get_marker() == marker
        and line.get_fillstyle() == fillstyle
    ]
    assert len(matches) == 1, f"expected one {marker!r} marker line for {cell}, found {len(matches)}"
    x, y = (np.asarray(a, dtype=float) for a in matches[0].get_data())
    return x[np.isfinite(y)], y[np.isfinite(y)]


def band_of(ax, cell):
    """(x, low, high) of the one filled band in ``cell``'s colour."""
    bands = [
        c
        for c in ax.collections
        if isinstance(c, PolyCollection)
        and to_hex(c.get_facecolor()[0], keep_alpha=False) == PALETTE[cell].lower()
    ]
    assert len(bands) == 1, f"expected one band for {cell}, found {len(bands)}"
    vertices = pd.DataFrame(bands[0].get_paths()[0].vertices, columns=["x", "y"])
    edges = vertices.groupby("x")["y"].agg(["min", "max"])
    return edges.index.to_numpy(), edges["min"].to_numpy(), edges["max"].to_numpy()


def data_axes(fig: Figure):
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def label_value(text: str) -> float:
    """The number a tick label shows: '0.5', '2000', '$10^{-3}$' or '$2\\times10^{-3}$'."""
    power = re.fullmatch(r"\$(?:([\d.]+)\\times)?10\^\{(-?\d+)\}\$", text)
    if power:
        return float(power.group(1) or 1.0) * 10.0 ** int(power.group(2))
    return float(text)


def assert_log10_axis(axis, min_ticks=2):
    """The axis holds log10 values and every tick label reads as 10**(its position)."""
    low, high = sorted(axis.get_view_interval())
    locs = np.array([k for k in axis.get_majorticklocs() if low - 1e-9 <= k <= high + 1e-9])
    assert len(locs) >= min_ticks
    labels = axis.get_major_formatter().format_ticks(locs)
    np.testing.assert_allclose([label_value(t) for t in labels], 10.0**locs, rtol=0.01)
    return labels


def log10_seed_stats(rows: pd.DataFrame, x: str = "lag", value: str = "value") -> pd.DataFrame:
    """Independent reference: per x, mean and standard error over rows (seeds) of log10 values."""
    logs = pd.DataFrame({x: rows[x].to_numpy(), "log": np.log10(rows[value].to_numpy(dtype=float))})
    return logs.groupby(x)["log"].agg(mean="mean", sem=lambda v: stats.sem(v))


NEUTRAL = {to_hex("0.2"), to_hex("0.3")}  # baselines and reference lines, not cells


def data_colours(fig: Figure) -> set[str]:
    """Colours of every line, band and point drawn on the figure's data axes (greys excluded)."""
    colours = set()
    for ax in data_axes(fig):
        colours |= {to_hex(line.get_color()) for line in ax.get_lines()}
        for collection in ax.collections:
            colours |= {to_hex(c, keep_alpha=False) for c in collection.get_facecolor()}
            if np.any(collection.get_linewidth() > 0):  # an edge of width 0 is not drawn
                colours |= {to_hex(c, keep_alpha=False) for c in collection.get_edgecolor()}
    return colours - NEUTRAL


# --------------------------------------------------------------------------- style


def test_palette_covers_every_preset_with_distinct_colours():
    assert set(PALETTE) == set(CELL_ORDER)
    assert len(set(PALETTE.values())) == len(PALETTE)


@pytest.mark.parametrize("cell", CELL_ORDER)
def test_rnn_family_is_warm_and_gated_cells_are_cool(cell):
    hue = colorsys.rgb_to_hsv(*to_rgb(PALETTE[cell]))[0]
    warm = hue <= 0.17 or hue >= 0.8
    assert warm == cell.endswith("rnn")


def test_unknown_preset_gets_a_stable_colour_outside_the_palette():
    assert cell_color("my_cell") == cell_color("my_cell")
    assert cell_color("my_cell") not in PALETTE.values()


def test_a_chunker_is_named_and_coloured_as_its_model_not_its_levels_cell():
    runs = pd.DataFrame({"cell": ["rnn", "rnn", "gru"], "model": ["sequence", "chunker", None]})
    assert list(conditions.model_labels(runs)) == ["rnn", "chunker(rnn)", "gru"]
    assert list(conditions.model_labels(runs.drop(columns="model"))) == ["rnn", "rnn", "gru"]
    assert cell_color("chunker(rnn)") == cell_color("chunker(gru)") not in PALETTE.values()


def test_a_net_trained_on_cross_entropy_is_named_apart():
    runs = pd.DataFrame({"cell": ["lstm1997", "lstm1997"], "logistic_loss": ["squared", "cross_entropy"]})
    assert list(conditions.model_labels(runs)) == ["lstm1997", "lstm1997, cross-entropy"]


def test_figures_leave_global_rcparams_untouched(frames):
    before = dict(mpl.rcParams)
    gradient_figures.gradient_decay(frames.analysis)
    assert dict(mpl.rcParams) == before


# --------------------------------------------------------------------------- conditions


def test_condition_labels_name_varying_settings_in_numeric_order(frames):
    labels = conditions.condition_labels(frames.runs)
    assert list(labels.cat.categories) == ["adding, length=30", "adding, length=120"]
    assert labels[run_id("lstm", 120, 1)] == "adding, length=120"


def test_condition_labels_are_per_task_in_mixed_studies():
    adding = make_frames(cells=("lstm",)).runs
    copy = adding.drop(columns="length").assign(
        task="copy", delay=adding["length"] * 2, run_id="copy-" + adding["run_id"]
    )
    labels = conditions.condition_labels(pd.concat([adding, copy], ignore_index=True))
    assert list(labels.cat.categories) == [
        "adding, length=30",
        "adding, length=120",
        "copy, delay=60",
        "copy, delay=240",
    ]


def test_condition_labels_leave_out_settings_that_belong_to_a_cell():
    # Arjovsky et al.'s sizes: hidden size set per cell is the cell's, not a condition; varied
    # across every cell it is one
    runs = make_frames(cells=("rnn", "lstm")).runs
    per_cell = runs.assign(hidden_size=runs["cell"].map({"rnn": 80, "lstm": 40}))
    assert list(conditions.condition_labels(per_cell).cat.categories) == [
        "adding, length=30",
        "adding, length=120",
    ]
    swept = runs.assign(hidden_size=np.where(runs["seed"] == 0, 40, 80))
    assert "adding, length=30, hidden_size=40" in list(conditions.condition_labels(swept).cat.categories)


def test_condition_labels_leave_out_settings_that_follow_from_another():
    # copy_length's shorter budgets at long delays: max_steps follows from the delay, so the
    # label names the delay alone, in numeric order; a budget varied on its own is named
    runs = make_frames(cells=("rnn", "lstm")).runs
    budgets = runs.assign(max_steps=runs["length"].map({30: 6000, 120: 1500}))
    assert list(conditions.condition_labels(budgets).cat.categories) == [
        "adding, length=30",
        "adding, length=120",
    ]
    swept = runs.assign(max_steps=np.where(runs["seed"] == 0, 6000, 1500))
    assert list(conditions.condition_labels(swept).cat.categories) == [
        "adding, length=30, max_steps=1500",
        "adding, length=30, max_steps=6000",
        "adding, length=120, max_steps=1500",
        "adding, length=120, max_steps=6000",
    ]


def test_condition_labels_leave_out_settings_that_follow_from_the_cell_and_a_named_one():
    # the Hochreiter study's temporal order: the 1997 net's cell_params (a dict) differ per number
    # of markers, the other cells' are empty: set by the cell and the task parameter together
    runs = make_frames(cells=("rnn", "lstm")).runs
    biases = {30: [-2, -4], 120: [-2, -4, -6]}
    per_pair = runs.assign(
        cell_params=[
            {"input_gate_bias": biases[length]} if cell == "lstm" else {}
            for cell, length in zip(runs["cell"], runs["length"], strict=True)
        ]
    )
    assert list(conditions.condition_labels(per_pair).cat.categories) == [
        "adding, length=30",
        "adding, length=120",
    ]
    # plotted against the length (success_vs_difficulty), they name no panel of their own
    assert list(conditions.condition_labels(per_pair, exclude=["length"]).cat.categories) == ["adding"]
    # varied on its own, a dict-valued setting is named, and its runs sort by it
    swept = runs.assign(cell_params=[{"init_range": 0.1 if seed else 0.2} for seed in runs["seed"]])
    assert list(conditions.condition_labels(swept).cat.categories) == [
        "adding, length=30, cell_params={'init_range': 0.1}",
        "adding, length=30, cell_params={'init_range': 0.2}",
        "adding, length=120, cell_params={'init_range': 0.1}",
        "adding, length=120, cell_params={'init_range': 0.2}",
    ]


def test_learning_curves_clip_a_diverging_run(frames):
    metrics = frames.metrics.copy()
    exploding = (metrics["cell"] == "rnn") & (metrics["step"] == metrics["step"].max())
    metrics.loc[exploding, "loss_ratio"] = 1e24
    fig = training_figures.learning_curves(metrics)
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert all(ax.get_ylim()[1] == 3.0 for ax in axes)
    assert "clipped at 1,000x the baseline" in fig._suptitle.get_text()
    assert "clipped" not in training_figures.learning_curves(frames.metrics)._suptitle.get_text()


@pytest.mark.parametrize(
    ("varying", "expected"),
    [("length", "length"), ("delay", "delay"), ("n_copy", "n_copy"), ("hidden_size", None)],
)
def test_difficulty_column_is_the_varying_task_parameter(varying, expected):
    runs = difficulty_runs()
    runs[varying] = [1, 1, 2, 2]
    assert conditions.difficulty_column(runs) == expected


# Every TrainConfig field, today's and those added later: varied, it is a condition of the study
# but never the task's difficulty (task_params is no column: its parameters are).
@pytest.mark.parametrize(
    "field", [f.name for f in dataclasses.fields(TrainConfig) if f.name != "task_params"]
)
def test_difficulty_column_is_never_a_training_setting(field):
    runs = difficulty_runs()
    runs[field] = [1, 1, 2, 2]
    assert conditions.difficulty_column(runs) is None


def difficulty_runs() -> pd.DataFrame:
    """Four runs of one cell and task whose task parameters do not vary."""
    return pd.DataFrame(
        {
            "run_id": list("abcd"),
            "cell": "lstm",
            "task": "copy",
            "seed": [0, 1, 0, 1],
            "length": 10,
            "delay": 100,
            "hidden_size": 64,
            "solved": True,
        }
    )


# --------------------------------------------------------------------------- figures


@pytest.fixture(scope="module")
def decay_fig(frames):
    return gradient_figures.gradient_decay(frames.analysis)


@pytest.fixture(scope="module")
def heatmap_fig(frames):
    return gradient_figures.gradient_heatmap(frames.analysis)


@pytest.fixture(scope="module")
def curves_fig(frames):
    return training_figures.learning_curves(frames.metrics)


@pytest.fixture(scope="module")
def success_fig(frames):
    return training_figures.success_vs_difficulty(frames.runs)


@pytest.fixture(scope="module")
def horizon_fig(fits):
    return fit_figures.memory_horizon(fits)


@pytest.fixture(scope="module")
def lstm_fig(frames):
    return gradient_figures.lstm_internals(frames.analysis)


@pytest.mark.parametrize(
    ("figure", "cells"),
    [
        ("decay_fig", CELLS),
        ("curves_fig", CELLS),
        ("success_fig", CELLS),
        ("horizon_fig", CELLS),
        ("lstm_fig", ("lstm",)),
    ],
)
def test_every_line_band_and_point_has_its_cells_palette_colour(request, figure, cells):
    fig = request.getfixturevalue(figure)
    assert data_colours(fig) == {PALETTE[c].lower() for c in cells}


def test_gradient_heatmap_titles_carry_the_palette_colours(heatmap_fig):
    titled = {ax.get_title().split(" — ")[0]: to_hex(ax.title.get_color()) for ax in data_axes(heatmap_fig)}
    assert titled == {c: PALETTE[c].lower() for c in CELLS}


def test_figures_leave_no_pyplot_figures_open(
    decay_fig, heatmap_fig, curves_fig, success_fig, horizon_fig, lstm_fig
):
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []


def test_gradient_decay_facets_lines_colours_and_log_scale(decay_fig):
    axes = data_axes(decay_fig)
    assert len(axes) == len(LENGTHS) * 2  # conditions x (init, final)
    for ax in axes:
        labels = assert_log10_axis(ax.yaxis, min_ticks=3)
        assert all(label.startswith("$10^{") for label in labels)  # norms over decades: powers of ten
        assert sorted(to_hex(line.get_color()) for line in solid_lines(ax)) == sorted(
            PALETTE[c].lower() for c in CELLS
        )
        assert to_hex(line_of(ax, "rnn", "--").get_color()) == PALETTE["rnn"].lower()  # bound: rnn only
        assert len([line for line in ax.get_lines() if line.get_linestyle() == "--"]) == 1
        assert "log scale" in axes[0].get_ylabel()
    assert [ax.get_title() for ax in axes[:2]] == [
        "adding, length=30 — at initialisation",
        "adding, length=30 — after training",
    ]


@pytest.mark.parametrize(("panel", "phase"), [(0, "init"), (1, "final")])
def test_gradient_decay_lines_are_the_geometric_mean_over_seeds(decay_fig, panel, phase):
    ax = data_axes(decay_fig)[panel]
    for cell in CELLS:
        line = line_of(ax, cell)
        np.testing.assert_allclose(
            line.get_ydata(), line.get_xdata() * np.log10(DECAY[cell, phase]), atol=1e-9
        )
    bound = line_of(ax, "rnn", "--")
    np.testing.assert_allclose(bound.get_ydata(), bound.get_xdata() * np.log10(BOUND[phase]), atol=1e-9)


@pytest.mark.parametrize(("panel", "phase", "length"), [(0, "init", 30), (3, "final", 120)])
def test_gradient_decay_averages_log10_over_seeds_with_a_standard_error_band(
    frames, decay_fig, panel, phase, length
):
    ax = data_axes(decay_fig)[panel]
    rows = frames.analysis[
        (frames.analysis["quantity"] == "grad_norm")
        & (frames.analysis["stat"] == "mean")
        & (frames.analysis["phase"] == phase)
        & (frames.analysis["length"] == length)
    ]
    for cell in CELLS:
        expected = log10_seed_stats(rows[rows["cell"] == cell])
        line = line_of(ax, cell)
        np.testing.assert_array_equal(line.get_xdata(), expected.index)
        np.testing.assert_allclose(line.get_ydata(), expected["mean"], atol=1e-9)
        x, low, high = band_of(ax, cell)
        np.testing.assert_array_equal(x, expected.index)
        np.testing.assert_allclose(low, expected["mean"] - expected["sem"], atol=1e-9)
        np.testing.assert_allclose(high, expected["mean"] + expected["sem"], atol=1e-9)


def test_gradient_heatmap_has_one_panel_per_cell_and_a_shared_scale(heatmap_fig):
    meshes = [ax.collections[0] for ax in data_axes(heatmap_fig) if ax.collections]
    assert len(meshes) == len(LENGTHS) * len(CELLS)
    assert len({(m.norm.vmin, m.norm.vmax) for m in meshes}) == 1
    rnn_short = next(ax for ax in data_axes(heatmap_fig) if ax.get_title() == "rnn — adding, length=30")
    grid = np.asarray(rnn_short.collections[0].get_array()).reshape(len(PHASE_STEPS), LENGTHS[0])
    expected = np.array(
        [[np.log10(DECAY["rnn", phase]) * lag for lag in range(LENGTHS[0])] for phase, _ in PHASE_STEPS]
    )  # rows: steps 0, 50, 100
    np.testing.assert_allclose(grid, expected, atol=1e-12)
    assert isinstance(rnn_short.collections[0], QuadMesh)


def test_gradient_heatmap_labels_are_thinned_and_the_colorbar_reads_as_powers(heatmap_fig):
    rnn_long = next(ax for ax in data_axes(heatmap_fig) if ax.get_title() == "rnn — adding, length=120")
    shown = [t.get_text() for t in rnn_long.get_xticklabels() if t.get_text()]
    assert 2 <= len(shown) <= 6 and shown[0] == "0"
    assert [t.get_text() for t in rnn_long.get_yticklabels()] == ["0", "50", "100"]  # training steps
    (colorbar,) = [ax for ax in heatmap_fig.axes if ax.get_label() == "<colorbar>"]
    assert_log10_axis(colorbar.yaxis)
    assert "log scale" in colorbar.get_ylabel()


def test_learning_curves_have_baseline_log_scale_and_palette(curves_fig):
    axes = [ax for ax in curves_fig.axes if ax.get_visible() and ax.axison]
    assert len(axes) == len(LENGTHS)
    for ax in axes:
        assert_log10_axis(ax.yaxis)
        assert any(line.get_linestyle() == ":" and set(line.get_ydata()) == {0.0} for line in ax.get_lines())
        lstm = line_of(ax, "lstm")
        steps = lstm.get_xdata() / 32
        np.testing.assert_allclose(lstm.get_ydata(), np.log10(FINAL_RATIO["lstm"]) * steps / 100, atol=1e-9)


def test_success_vs_difficulty_solve_rates_exclude_failed_runs(success_fig):
    top, bottom = success_fig.axes[0], success_fig.axes[1]
    assert [t.get_text() for t in bottom.get_xticklabels()] == ["30", "120"]
    assert_log10_axis(bottom.yaxis)
    for cell in CELLS:
        expected = [n / len(SEEDS) for n in SOLVED_SEEDS[cell]]
        np.testing.assert_allclose(line_of(top, cell).get_ydata(), expected)
        median = FINAL_RATIO[cell] * seed_factor(1)  # seed 1 has the median offset
        np.testing.assert_allclose(line_of(bottom, cell).get_ydata(), [np.log10(median)] * 2, atol=1e-9)
    # dodged: cells at one difficulty never share an x, so lines at 0 or 1 stay visible
    assert len({tuple(line_of(top, cell).get_xdata()) for cell in CELLS}) == len(CELLS)


def test_success_vs_difficulty_legend_names_only_the_cells_drawn(frames):
    # a cell that ran only a task of fixed difficulty has no line, so no legend entry either
    fixed = frames.runs[frames.runs["cell"] == "gru"].assign(
        cell="lstm_chrono", task="copy", run_id=lambda r: r["run_id"] + "-copy", length=30
    )
    fig = training_figures.success_vs_difficulty(pd.concat([frames.runs, fixed], ignore_index=True))
    (legend,) = fig.legends
    entries = [t.get_text() for t in legend.get_texts()]
    assert entries == [*CELLS, "memoryless baseline"]
    assert len(data_axes(fig)) == 2  # the copy runs drew no panel


def test_success_vs_difficulty_needs_a_varying_parameter(frames):
    assert training_figures.success_vs_difficulty(frames.runs[frames.runs["length"] == 30]) is None


def test_memory_horizon_marks_means_per_cell_and_phase(fits, horizon_fig):
    axes = data_axes(horizon_fig)
    assert len(axes) == 2 * len(LENGTHS)  # (decay factor, horizon) x conditions
    decay_ax, horizon_ax = axes[0], axes[len(LENGTHS)]
    assert_log10_axis(horizon_ax.yaxis)
    for position, cell in enumerate(CELLS):
        for phase, fill in (("init", "none"), ("final", "full")):
            x, mean = markers_of(decay_ax, cell, fillstyle=fill)
            # per-seed factors are DECAY * (0.99, 1, 1/0.99): their geometric mean is DECAY
            assert mean == pytest.approx([DECAY[cell, phase]])
            assert x == pytest.approx([position + (-0.15 if phase == "init" else 0.15)])
    infinite = [line for line in horizon_ax.get_lines() if line.get_marker() == "^"]
    assert [to_hex(line.get_color()) for line in infinite] == [PALETTE["lstm"].lower()]
    x, bound = markers_of(decay_ax, "rnn", marker="x")
    assert x == pytest.approx([-0.15, 0.15]) and bound == pytest.approx([BOUND["init"], BOUND["final"]])
    # every finite run is one point in its cell's colour, at its value (log10 for the horizon)
    runs = fits[fits["condition"] == "adding, length=30"]
    for ax, column in ((decay_ax, "decay_factor"), (horizon_ax, "memory_horizon")):
        points = [c for c in ax.collections if isinstance(c, PathCollection)]
        shown = sorted(
            (to_hex(c.get_facecolor()[0], keep_alpha=False), y) for c in points for _x, y in c.get_offsets()
        )
        finite = runs[np.isfinite(runs[column])]
        values = finite[column] if column == "decay_factor" else np.log10(finite[column])
        expected = sorted(zip(finite["cell"].map(lambda c: PALETTE[c].lower()), values, strict=True))
        assert [colour for colour, _y in shown] == [colour for colour, _y in expected]
        np.testing.assert_allclose([y for _c, y in shown], [y for _c, y in expected], atol=1e-12)


def test_memory_horizon_uses_the_fit_interval_for_a_single_row():
    fits = pd.DataFrame(
        {
            "cell": ["gru"],
            "phase": ["init"],
            "decay_factor": [0.9],
            "decay_factor_ci_low": [0.8],
            "decay_factor_ci_high": [0.95],
            "memory_horizon": [100.0],
        }
    )
    ax = fit_figures.memory_horizon(fits).axes[0]
    bars = [
        line
        for line in ax.get_lines()
        if line.get_marker() in ("None", "", None) and line.get_linestyle() == "-"
    ]
    bars = [line for line in bars if to_hex(line.get_color()) == PALETTE["gru"].lower()]
    assert len(bars) == 1
    assert [np.nanmin(bars[0].get_ydata()), np.nanmax(bars[0].get_ydata())] == pytest.approx([0.8, 0.95])
    assert markers_of(ax, "gru", fillstyle="none")[1] == pytest.approx([0.9])


def test_memory_horizon_keeps_the_decay_axis_on_the_points_when_an_interval_explodes():
    # Two seeds far apart: the 95% t-interval (t = 12.7) reaches far above any decay factor.
    fits = pd.DataFrame(
        {
            "run_id": ["a", "b"],
            "cell": ["rnn", "rnn"],
            "phase": ["final", "final"],
            "decay_factor": [0.3, 0.9],
            "memory_horizon": [10.0, 100.0],
            "gradient_bound": [1.3, 1.3],
        }
    )
    ax = fit_figures.memory_horizon(fits).axes[0]
    bottom, top = ax.get_ylim()
    assert bottom == 0.0
    assert top == pytest.approx(1.1 * 1.3)  # the largest shown value: the Pascanu bound


def test_lstm_internals_compares_cell_and_hidden_paths(lstm_fig):
    axes = data_axes(lstm_fig)
    assert len(axes) == len(LENGTHS) * 2 * 2  # conditions x (gate, path) x (init, final)
    gate_ax, path_ax = axes[0], axes[2]
    np.testing.assert_allclose(line_of(gate_ax, "lstm").get_ydata(), GATE_F["median"])
    _x, low, high = band_of(gate_ax, "lstm")
    np.testing.assert_allclose(low, GATE_F["q10"])
    np.testing.assert_allclose(high, GATE_F["q90"])
    assert_log10_axis(path_ax.yaxis)
    cell_path, hidden_path = line_of(path_ax, "lstm", "-"), line_of(path_ax, "lstm", "--")
    np.testing.assert_allclose(cell_path.get_ydata(), np.log10(0.995) * cell_path.get_xdata(), atol=1e-9)
    np.testing.assert_allclose(hidden_path.get_ydata(), np.log10(0.9) * hidden_path.get_xdata(), atol=1e-9)


def test_lstm_internals_is_none_without_lstm_runs(frames):
    assert gradient_figures.lstm_internals(frames.analysis[frames.analysis["cell"] != "lstm"]) is None


@pytest.fixture(scope="module")
def connectivity_fig(frames):
    return gradient_figures.connectivity_heatmap(frames.analysis)


def test_connectivity_heatmap_has_a_panel_per_cell_and_phase_on_one_robust_scale(frames, connectivity_fig):
    axes = data_axes(connectivity_fig)
    assert len(axes) == 2 * len(CELLS)  # (init, final) of the one condition with connectivity rows
    meshes = [ax.collections[0] for ax in axes]
    assert all(isinstance(m, QuadMesh) for m in meshes)
    rows = frames.analysis[frames.analysis["quantity"] == "connectivity"]
    assert set(rows["length"]) == {LENGTHS[0]}
    per_cell = rows.assign(log=np.log10(rows["value"])).groupby(["cell", "phase", "t", "lag"])["log"].mean()
    expected = tuple(np.percentile(per_cell, [2, 98]))
    assert len({(m.norm.vmin, m.norm.vmax) for m in meshes}) == 1
    assert (meshes[0].norm.vmin, meshes[0].norm.vmax) == pytest.approx(expected, abs=1e-12)
    (colorbar,) = [ax for ax in connectivity_fig.axes if ax.get_label() == "<colorbar>"]
    assert_log10_axis(colorbar.yaxis)
    assert "log scale" in colorbar.get_ylabel()


@pytest.mark.parametrize(("cell", "phase", "row"), [("rnn", "init", 0), ("lstm", "final", 1)])
def test_connectivity_heatmap_is_the_geometric_mean_over_seeds_by_output_and_input_step(
    connectivity_fig, cell, phase, row
):
    axes = data_axes(connectivity_fig)
    ax = axes[row * len(CELLS) + CELLS.index(cell)]
    assert ax.get_title().startswith(cell) and PHASE_LABELS[phase] in ax.get_title()
    length = LENGTHS[0]
    grid = np.ma.filled(ax.collections[0].get_array(), np.nan).reshape(length, length)  # rows t', columns t
    output, t = np.indices((length, length))
    # the seeds' log offsets average to 0: the geometric mean is the seed-free value
    expected = np.log10(connectivity_value(cell, phase, 0, t, output - t, length)) - SEED_LOG_OFFSET[0]
    below = t <= output
    np.testing.assert_allclose(grid[below], expected[below], atol=1e-12)
    assert np.isnan(grid[~below]).all()  # inputs after the output: blank


def test_connectivity_heatmap_is_none_with_only_training_phase_probes(frames):
    rows = frames.analysis[
        (frames.analysis["quantity"] != "connectivity") | (frames.analysis["phase"] == "train")
    ]
    assert gradient_figures.connectivity_heatmap(rows) is None


@pytest.mark.parametrize(
    ("low", "high", "plain", "expected"),
    [
        (
            -30.0,
            0.3,
            False,
            ["$10^{-30}$", "$10^{-25}$", "$10^{-20}$", "$10^{-15}$", "$10^{-10}$", "$10^{-5}$", "$10^{0}$"],
        ),
        (-2.2, 1.1, True, ["0.01", "0.1", "1", "10"]),
        (-2.2, 1.1, False, ["$10^{-2}$", "$10^{-1}$", "$10^{0}$", "$10^{1}$"]),
        (-1.4, 0.4, False, ["0.05", "0.1", "0.2", "0.5", "1", "2"]),
        (-0.02, 0.56, True, ["1", "1.5", "2", "2.5", "3", "3.5"]),
        (-0.04, 0.08, False, ["0.95", "1", "1.05", "1.1", "1.15", "1.2"]),
    ],
)
def test_log10_ticks_read_as_the_quantity(low, high, plain, expected):
    ax = Figure().subplots()
    ax.set_ylim(low, high)
    ticks.log10_axis(ax.yaxis, plain=plain)
    assert assert_log10_axis(ax.yaxis) == expected


EMPTY = pd.DataFrame({"run_id": []})  # what load_study returns for a study with no finished runs


@pytest.mark.parametrize(
    "draw",
    [
        gradient_figures.gradient_decay,
        gradient_figures.gradient_heatmap,
        training_figures.learning_curves,
        training_figures.success_vs_difficulty,
        fit_figures.memory_horizon,
        gradient_figures.lstm_internals,
        gradient_figures.connectivity_heatmap,
    ],
)
def test_every_figure_returns_none_without_data(draw):
    assert draw(EMPTY) is None


def test_gradient_decay_is_none_with_only_training_phase_probes(frames):
    assert gradient_figures.gradient_decay(frames.analysis[frames.analysis["phase"] == "train"]) is None


def closed_form_fit(factor: float, length: int) -> dict[str, float]:
    """What fit_decay must find on g0 * factor**lag, lags 0 .. length - 1: the decay factor, its
    half-life, and the memory horizon (the first lag below 1e-6 of lag 0 if the range has one,
    else where the exact line crosses 1e-6)."""
    lags = np.arange(length)
    below = lags[factor**lags < 1e-6]
    crossing = math.log(1e-6) / math.log(factor)
    return {
        "decay_factor": factor,
        "half_life": math.log(2) / -math.log(factor),
        "memory_horizon": float(below[0]) if below.size else crossing,
    }


def test_decay_fits_fit_each_run_and_phase(frames):
    fits = fit_figures.decay_fits(frames.analysis)
    assert len(fits) == len(CELLS) * len(LENGTHS) * len(SEEDS) * 2
    lengths = fits["run_id"].map(frames.runs.set_index("run_id")["length"])
    expected = pd.DataFrame(
        [
            closed_form_fit(DECAY[c, p], n)
            for c, p, n in zip(fits["cell"], fits["phase"], lengths, strict=True)
        ]
    )
    assert (expected["memory_horizon"] == 62).any()  # rnn at init, length 120: a measured first lag
    for column in expected:
        np.testing.assert_allclose(fits[column], expected[column], rtol=1e-9, err_msg=column)
    bound = fits.apply(lambda r: BOUND[r["phase"]] if r["cell"] == "rnn" else np.nan, axis=1)
    np.testing.assert_allclose(fits["gradient_bound"], bound)
    assert list(fits["condition"].cat.categories) == ["adding, length=30", "adding, length=120"]


# --------------------------------------------------------------------------- summary and HTML


def test_summary_table_counts_and_medians(frames, fits):
    table = html.summary_table(frames, fits=fits).set_index(["condition", "cell"])
    assert list(table.index.get_level_values("cell")[:3]) == ["rnn", "lstm", "gru"]  # palette order
    long = table.loc["adding, length=120"]
    assert long.loc["gru", ["runs", "solved", "diverged", "failed"]].tolist() == [4, 1, 0, 1]
    assert long.loc["rnn", ["runs", "solved", "diverged", "failed"]].tolist() == [3, 0, 1, 0]
    assert long.loc["lstm", "median_final_loss_ratio"] == pytest.approx(FINAL_RATIO["lstm"] * seed_factor(1))
    # seed 2 of the rnn diverged: counted above, left out of the median loss
    both = (seed_factor(0) + seed_factor(1)) / 2
    assert long.loc["rnn", "median_final_loss_ratio"] == pytest.approx(FINAL_RATIO["rnn"] * both)
    assert long.loc["gru", "decay_factor_final"] == pytest.approx(DECAY["gru", "final"])
    assert long.loc["lstm", "memory_horizon_init"] == pytest.approx(100.0)


def broken_fits(analysis):
    raise RuntimeError("fit bug")


def test_summary_table_without_fits_has_empty_decay_columns(frames, monkeypatch):
    monkeypatch.setattr(html, "decay_fits", broken_fits)
    with pytest.warns(UserWarning, match="decay fits skipped: RuntimeError: fit bug"):
        table = html.summary_table(frames)
    assert table["decay_factor_init"].isna().all()
    assert table["runs"].sum() == len(frames.runs)


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURE_KEYS = [spec.key for spec in html._FIGURES]


def check_report(index: Path, drawn: list[str]) -> str:
    page = index.read_text(encoding="utf-8")
    for key in drawn:
        png, svg = index.parent / f"{key}.png", index.parent / f"{key}.svg"
        assert png.read_bytes().startswith(PNG_MAGIC) and png.stat().st_size > 10_000
        assert "<svg" in svg.read_text(encoding="utf-8")[:2000]
        assert f'href="{key}.svg"' in page and f'href="{key}.png"' in page
    assert page.count('src="data:image/png;base64,') == len(drawn)
    return page


def test_write_report_notes_missing_figures_instead_of_failing(tmp_path, monkeypatch):
    frames = make_frames(cells=("rnn", "gru"), lengths=(30,))

    def broken(analysis):
        raise RuntimeError("figure bug")

    monkeypatch.setattr(html, "gradient_heatmap", broken)
    monkeypatch.setattr(html, "decay_fits", broken_fits)
    with pytest.warns(UserWarning) as warned:
        index = html.write_report(frames, {"name": "no-lstm"}, tmp_path)
    messages = [str(w.message) for w in warned]
    assert any("gradient_heatmap failed" in m for m in messages)
    assert any("decay fits skipped" in m for m in messages)
    page = check_report(index, ["gradient_decay", "learning_curves", "connectivity"])
    # heatmap: broken; success: no varying parameter; horizon: no fits; internals: no LSTM
    for key in ("gradient_heatmap", "success_vs_difficulty", "memory_horizon", "lstm_internals"):
        assert not (tmp_path / f"{key}.png").exists()
    assert page.count('class="note">Not drawn') == 4
    assert "RuntimeError: figure bug" in page and "Decay fits unavailable" in page


def write_study(root: Path, frames) -> Path:
    """A complete study folder as seqmem 0.1.0 wrote it: study.json and, per run, config.json,
    status.json (without the digests of later versions) and, unless it failed, metrics.parquet,
    analysis.parquet and checkpoint.pt (so loading it warns of nothing)."""
    study = root / "tiny"
    grid = []
    for run in frames.runs.to_dict("records"):
        rid = run["run_id"]
        folder = study / "runs" / rid
        folder.mkdir(parents=True)
        train = {
            k: run[k]
            for k in (
                "task",
                "cell",
                "hidden_size",
                "optimizer",
                "lr",
                "batch_size",
                "max_steps",
                "seed",
                "device",
            )
        }
        train["task_params"] = {"length": run["length"], "variant": run["variant"]}
        (folder / "config.json").write_text(json.dumps({"run_id": rid, "train": train}))
        final = (
            {}
            if run["status"] == "failed"
            else {"loss": run["final_loss"], "loss_ratio": run["final_loss_ratio"]}
        )
        status = {
            k: run[k]
            for k in ("run_id", "status", "steps", "sequences_seen", "diverged_step", "elapsed_s", "error")
        }
        if run["status"] != "failed":
            config_columns = list(train) + ["length", "variant", "run_id"]
            for name, frame in (("metrics", frames.metrics), ("analysis", frames.analysis)):
                rows = frame[frame["run_id"] == rid].drop(columns=config_columns, errors="ignore")
                rows.to_parquet(folder / f"{name}.parquet", index=False)
            save_checkpoint(folder / "checkpoint.pt", {"weight": torch.zeros(2)}, train)
        (folder / "status.json").write_text(json.dumps({**status, "final_metrics": final}))
        grid.append({"run_id": rid, "train": train})
    (study / "study.json").write_text(json.dumps({"name": "tiny", "preset": "quick", "grid": grid}))
    return study


@pytest.mark.filterwarnings("error")  # the folder is complete: nothing to warn about
def test_render_report_from_a_study_folder(tmp_path):
    study = write_study(tmp_path, make_frames(lengths=(20, 40)))
    index = html.render_report(study)
    assert index == study / "report" / "index.html"
    page = check_report(index, FIGURE_KEYS)
    assert "<h1>seqmem study: tiny</h1>" in page and "Not drawn" not in page
    assert "adding, length=40" in page and "budget_exhausted" in page and "failed" in page  # run counts


def as_0_1_0(analysis: pd.DataFrame) -> pd.DataFrame:
    """Probe rows in the layout seqmem 0.1.0 wrote: -1 for a missing step or lag, the stat
    'mean' on the gradient bound, no k, sample or n column."""
    old = analysis.drop(columns=["k", "sample", "n"])
    old["stat"] = old["stat"].fillna("mean")
    return (
        old.astype({"t": "Int64", "lag": "Int64"})
        .fillna({"t": -1, "lag": -1})
        .astype({"t": "int64", "lag": "int64"})
    )


@pytest.mark.filterwarnings("error")
def test_render_report_reads_a_study_written_by_seqmem_0_1_0(tmp_path):
    frames = make_frames(cells=("rnn", "lstm"), lengths=(20, 40))
    old = types.SimpleNamespace(runs=frames.runs, metrics=frames.metrics, analysis=as_0_1_0(frames.analysis))
    assert (old.analysis["t"] == -1).any() and "k" not in old.analysis
    new_study, old_study = write_study(tmp_path / "new", frames), write_study(tmp_path / "old", old)
    page = check_report(html.render_report(old_study), FIGURE_KEYS)
    assert "Not drawn" not in page
    old_frames, new_frames = results.load_study(old_study), results.load_study(new_study)
    pd.testing.assert_frame_equal(html.summary_table(old_frames), html.summary_table(new_frames))
    fits = [
        fit_figures.decay_fits(conditions.add_conditions(upgrade_probe_rows(f.analysis), f.runs))
        for f in (old_frames, new_frames)
    ]
    pd.testing.assert_frame_equal(*fits)
    assert fits[0].loc[fits[0]["cell"] == "rnn", "gradient_bound"].notna().all()  # from 0.1.0's t = -1 rows
