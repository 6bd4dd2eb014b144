"""Condition labels: which settings tell a study's runs apart, as figure panels and table rows name them.

Runs differ by cell (every figure's hue), by seed (replicates) and by whatever the study's axes
vary: the task and its parameters, or training settings such as the learning rate.  A run's
*condition* is its task plus every such setting that varies across that task's runs, e.g.
``"copy, delay=100"``.  ``add_conditions`` joins it onto any frame with a ``run_id`` column;
figures draw one panel per condition and the summary table one row per condition and cell.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from seqmem.config import TrainConfig

__all__ = [
    "STEP_PARAMETERS",
    "add_conditions",
    "condition_labels",
    "config_columns",
    "difficulty_column",
    "format_value",
    "model_labels",
]

# Columns of the runs frame that describe a run's outcome, not its configuration.
_OUTCOME_COLUMNS = {
    "run_id",
    "status",
    "steps",
    "sequences_seen",
    "diverged_step",
    "elapsed_s",
    "solved",
    "error",
    "traceback",
}
# Cells (with their model: ``model_labels``) are the hue of every figure and seeds are
# replicates: neither defines a condition.
_NOT_CONDITIONS = {"cell", "model", "seed", "device"}
# TrainConfig's fields: when one of these varies it is a condition, but never the task's difficulty.
# (task_params is no column: load_study spreads it into one column per task parameter.)
_TRAIN_FIELDS = frozenset(field.name for field in dataclasses.fields(TrainConfig)) - {"task_params"}
# Task parameters counted in steps, preferred as the difficulty when they vary.
STEP_PARAMETERS = ("delay", "length")


def model_labels(frame: pd.DataFrame) -> pd.Series:
    """Per row, the cell, or ``<model>(<cell>)`` for a run of another model than ``SequenceModel``
    (the chunker's ``chunker(rnn)``), with ", cross-entropy" where logistic outputs were trained on
    it (``logistic_loss``): what figures colour by and tables name."""
    labels = frame["cell"].astype(str)
    if "model" in frame:
        model = frame["model"].fillna("sequence").astype(str)
        labels = labels.where(model == "sequence", model + "(" + labels + ")")
    if "logistic_loss" in frame:
        labels = labels.where(
            frame["logistic_loss"].fillna("squared") != "cross_entropy", labels + ", cross-entropy"
        )
    return labels


def _varying(frame: pd.DataFrame, column: str) -> bool:
    # repr() makes unhashable cells (lists, dicts) countable.
    return frame[column].map(repr).nunique() > 1


def config_columns(runs: pd.DataFrame) -> list[str]:
    """The columns of a runs frame that hold configuration (not outcome, not our ``condition``)."""
    outcome = _OUTCOME_COLUMNS | {"condition"}
    return [c for c in runs.columns if c not in outcome and not c.startswith("final_")]


def _condition_columns(runs: pd.DataFrame) -> list[str]:
    return [c for c in config_columns(runs) if c not in _NOT_CONDITIONS and _varying(runs, c)]


def _set_by(runs: pd.DataFrame, column: str, keys: Sequence[str]) -> bool:
    """Whether ``column`` holds one value per combination of the ``keys`` that vary (a per-value
    override, such as Arjovsky et al.'s hidden sizes per cell, a shorter budget per long delay, or
    the 1997 net's gate biases per cell and number of markers): it follows from them, so it names
    no condition of its own."""
    keys = [key for key in keys if key in runs and _varying(runs, key)]
    if not keys:
        return False
    per_key = runs.groupby([runs[key].map(repr) for key in keys], sort=False)[column]
    return bool((per_key.agg(lambda v: v.map(repr).nunique()) == 1).all())


def _label_columns(runs: pd.DataFrame, exclude: Sequence[str]) -> list[str]:
    """The settings that name a condition within one task's runs: those that vary, task
    parameters before training settings, each left out when it follows from the cell together
    with the settings already named or ``exclude``d (a figure's x axis, say: a budget set per
    length is no condition of a plot against length)."""
    candidates = [c for c in _condition_columns(runs) if c != "task" and c not in exclude]
    candidates.sort(key=lambda c: c in _TRAIN_FIELDS)  # stable: the task's own parameters first
    named: list[str] = []
    for column in candidates:
        if not _set_by(runs, column, ("cell", *exclude, *named)):
            named.append(column)
    return named


def _sort_key(values: pd.Series) -> pd.Series:
    """Values as ``sort_values`` can order them: lists and dicts (cell_params) by their repr."""
    return values.map(repr) if values.map(lambda v: isinstance(v, (dict, list))).any() else values


def difficulty_column(runs: pd.DataFrame) -> str | None:
    """The numeric task parameter that varies across runs (``delay``/``length`` first), or None."""
    varying = [
        c
        for c in _condition_columns(runs)
        if c not in _TRAIN_FIELDS
        and pd.api.types.is_numeric_dtype(runs[c])
        and not pd.api.types.is_bool_dtype(runs[c])
    ]
    preferred = [c for c in STEP_PARAMETERS if c in varying]
    return (preferred or varying or [None])[0]


def format_value(value: object) -> str:
    """A config value as shown in labels and tables (floats in %g, missing as —)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    return f"{value:g}" if isinstance(value, float) else str(value)


def condition_labels(runs: pd.DataFrame, exclude: Sequence[str] = ()) -> pd.Series:
    """Per run_id, a label naming its task and every setting that varies across that task's runs,
    other than those that follow from the cell or from another named setting (``_label_columns``).

    Returns an ordered categorical Series (index ``run_id``, name ``condition``), e.g.
    ``"copy, delay=100"``; categories follow the task name, then the numeric order of the
    settings.  Varying settings are found per task, so a study mixing copy (delay) and adding
    (length) never labels an adding run with ``delay=nan``.
    """
    groups = runs.groupby("task", sort=True) if "task" in runs else [("all runs", runs)]
    labels = []
    for task, group in groups:
        columns = _label_columns(group, exclude)
        group = group.sort_values(columns, kind="stable", key=_sort_key) if columns else group
        label = pd.Series(str(task), index=group.index)
        for column in columns:
            label = label + f", {column}=" + group[column].map(format_value)
        labels.append(pd.Series(label.to_numpy(), index=pd.Index(group["run_id"], name="run_id")))
    result = pd.concat(labels) if labels else pd.Series([], dtype=object, index=pd.Index([], name="run_id"))
    categories = list(dict.fromkeys(result))
    return pd.Series(
        pd.Categorical(result, categories=categories, ordered=True), index=result.index, name="condition"
    )


def add_conditions(frame: pd.DataFrame, runs: pd.DataFrame, exclude: Sequence[str] = ()) -> pd.DataFrame:
    """``frame`` with a ``condition`` column (see ``condition_labels``) joined on run_id."""
    if frame.empty or runs.empty or "run_id" not in frame or "run_id" not in runs:
        return frame
    labels = condition_labels(runs, exclude)
    return frame.drop(columns="condition", errors="ignore").join(labels, on="run_id")
