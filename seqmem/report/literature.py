"""The published numbers seqmem reproduces, and the "paper vs seqmem" tables built from results.

The papers' numbers are data here, each row with its source; our side of every table is computed
from a study's ``load_study`` frames, never typed in.  ``literature_section(frames, study_info)``
renders, as HTML for the report, the tables of the papers a study declares in its ``literature``
(``studies/reproduce_*.py`` declare "hochreiter1997" and "arjovsky2016").

- Hochreiter & Schmidhuber (1997), "Long short-term memory", Neural Computation 9(8):1735-1780,
  sections 5.1-5.6 (experiments 1-6) and Tables 1-9: per experiment the share of successful
  trials and the mean number of training sequences until success of the original LSTM (and of the
  chunker "CH" where Table 2 compares it), and wrong predictions per 2,560 test sequences.
- Arjovsky, Shah & Bengio (2016), "Unitary evolution recurrent neural networks", ICML,
  section 4.1-4.2: the memoryless baselines of the copy task (10 ln 8 / (T + 20)) and the adding
  problem (MSE 0.167), that the tanh RNN and the LSTM stay at the copy baseline, and that their
  uRNN (128 complex units, seqmem's ``urnn`` with hidden_size 256) goes from initialisation to
  almost 0 without a plateau at the baseline, at T = 500 within about 100,000 training examples
  (their figure 1); per-cell curves are only plotted there, so no other number is claimed.
- Tallec & Ollivier (2018), "Can recurrent neural networks warp time?", ICLR: an LSTM with
  forget-gate bias 1 already beats that paper's LSTM baseline on the copy task.
"""

from __future__ import annotations

import html
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from seqmem.config import hochreiter_rule
from seqmem.report.conditions import model_labels
from seqmem.report.tables import html_table

__all__ = [
    "ARJOVSKY2016",
    "HOCHREITER1997",
    "HOCHREITER_TEST_SEQUENCES",
    "LITERATURE_TABLES",
    "arjovsky_table",
    "hochreiter_experiment",
    "hochreiter_table",
    "literature_section",
]

HOCHREITER_TEST_SEQUENCES = 2560
_H97 = "Hochreiter & Schmidhuber 1997, §5.{}"
# One row per experiment and T (the lag-defining length: adding/multiplication/temporal order/
# two-sequence length, experiment 2's p, 2c's q; none for the Reber grammar) and method: the
# paper's LSTM, or its chunker "CH" (Table 2).  success: share of successful trials where the paper
# states it; sequences: mean training sequences until success (3a-3c: until ST2); wrong: per 2,560
# test sequences (3a-3c: the paper's fraction misclassified x 2,560).  The LSTM row of experiment 1
# is Table 1's 3 blocks x 2 cells, alpha 0.1; 2c's is Table 3's q = p = 100; 3a-3c's are N = 3.
HOCHREITER1997 = pd.DataFrame(
    [
        ("1", math.nan, "LSTM", 1.0, 21_730, math.nan, math.nan, _H97.format(1)),
        ("2a", 100, "LSTM", 1.0, 5_040, math.nan, math.nan, _H97.format(2)),
        ("2a", 100, "CH", 0.33, 32_400, math.nan, math.nan, _H97.format(2)),
        ("2b", 100, "LSTM", 1.0, 5_680, math.nan, math.nan, _H97.format(2)),
        ("2b", 100, "CH", 0.0, math.nan, math.nan, math.nan, _H97.format(2)),
        ("2c", 100, "LSTM", math.nan, 31_000, math.nan, math.nan, _H97.format(2)),
        ("3a", 100, "LSTM", math.nan, 39_850, 0.000195 * 2560, math.nan, _H97.format(3)),
        ("3b", 100, "LSTM", math.nan, 43_250, 0.00828 * 2560, math.nan, _H97.format(3)),
        ("3c", 100, "LSTM", math.nan, 269_650, 0.00558 * 2560, math.nan, _H97.format(3)),
        ("4", 100, "LSTM", math.nan, 74_000, 1, math.nan, _H97.format(4)),
        ("4", 500, "LSTM", math.nan, 209_000, 0, math.nan, _H97.format(4)),
        ("4", 1000, "LSTM", math.nan, 853_000, 1, math.nan, _H97.format(4)),
        ("5", 100, "LSTM", math.nan, 482_000, 139, 0.0223, _H97.format(5)),
        ("6a", 100, "LSTM", math.nan, 31_390, 1, math.nan, _H97.format(6)),
        ("6b", 100, "LSTM", math.nan, 571_100, 2, math.nan, _H97.format(6)),
    ],
    columns=[
        "experiment", "T", "method", "paper_success", "paper_sequences", "paper_wrong", "paper_mse", "source",
    ],
).astype({"paper_sequences": "Int64"})  # fmt: skip

_A16 = "Arjovsky, Shah & Bengio 2016, §4.{}"
_TALLEC = "Tallec & Ollivier 2018: forget bias 1 already beats the LSTM baseline of Arjovsky et al."
ARJOVSKY2016 = pd.DataFrame(
    [
        ("copy", "rnn", "stays at the baseline", _A16.format(1)),
        ("copy", "lstm", f"stays at the baseline (their LSTM); {_TALLEC}", _A16.format(1)),
        (
            "copy",
            "urnn",
            "goes to almost 0 without a plateau at the baseline; at T = 500 within about 100,000 "
            "training examples (128 complex units)",
            _A16.format(1),
        ),
    ],
    columns=["task", "cell", "paper_finding", "source"],
)
ARJOVSKY_ITERATIONS = 20_000  # the paper's training budget (optimiser steps)


def _paper_baseline(task: str, T: int) -> float:
    """The memoryless baselines as Arjovsky et al. state them (copy: 10 symbols of 8, delay T)."""
    return 10 * math.log(8) / (T + 20) if task == "copy" else 0.167


def hochreiter_experiment(task: str, params: dict[str, Any]) -> str | None:
    """The experiment number of Hochreiter & Schmidhuber (1997) that a task config is, or None."""
    if task == "embedded_reber":
        return "1"
    if task in ("long_lag", "two_sequence"):
        return params.get("variant")
    if task == "very_long_lag":
        return "2c"
    if task == "adding" and params.get("variant") == "hochreiter1997":
        return "4"
    if task == "multiplication":
        return "5"
    if task == "temporal_order":
        return {2: "6a", 3: "6b"}.get(params.get("n_markers"))
    return None


# the task parameter that is an experiment's T (none for the Reber grammar)
_T_PARAMETER = {"long_lag": "p", "very_long_lag": "q", "embedded_reber": None}


def _row_params(row: pd.Series) -> dict[str, Any]:
    return {k: row[k] for k in ("variant", "n_markers") if k in row and pd.notna(row[k])}


def _row_t(row: pd.Series) -> float:
    name = _T_PARAMETER.get(row["task"], "length")
    return float(row[name]) if name is not None and name in row and pd.notna(row[name]) else math.nan


def _sequences_to_success(row: pd.Series) -> float:
    """Sequences seen, less the stream rule's window of successive right ones where it stopped the run."""
    stream = "stopping" in row and row["stopping"] == "hochreiter1997"
    return float(row["sequences_seen"]) - (hochreiter_rule(row["task"])[0] if stream else 0)


def _mean_std(values: pd.Series) -> tuple[float, float]:
    values = values.dropna().astype(float)
    if values.empty:
        return math.nan, math.nan
    # one value has no spread to estimate: NaN (shown blank), never a misleading 0
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else math.nan


def hochreiter_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per experiment, T and model (the cell, or ``chunker(<cell>)``): our runs next to the paper's
    original LSTM (the chunker's next to the paper's chunker, "CH").

    ``runs`` is ``load_study(...).runs`` of a study trained with the paper's stopping rules.
    ours: runs, solved (the stopping rule held within the budget), sequences to success (mean and
    sample std over the solved runs, like the paper's means over successful trials): for the
    training-stream rule (``stopping='hochreiter1997'``) the sequences before the window of
    successive right ones began (``sequences_seen`` minus the rule's window, the paper's "success
    after"), else the sequences until the rule held,
    wrong predictions per 2,560 test sequences (``final_error_rate`` scaled to 2,560), the final
    test loss.  ``sequences_vs_paper`` is our mean over the paper's; ``note`` states the budget
    and protocol."""
    columns = [
        "experiment", "T", "model", "hidden_size", "optimizer", "runs", "solved", "sequences_mean",
        "sequences_std", "wrong_per_2560", "test_loss", "paper_method", "paper_success", "paper_sequences",
        "paper_wrong", "paper_mse", "sequences_vs_paper", "note", "source",
    ]  # fmt: skip
    needed = {"task", "cell", "status", "sequences_seen", "final_error_rate"}
    if runs.empty or not needed <= set(runs.columns):
        return pd.DataFrame(columns=columns)
    runs = runs[runs["status"] != "failed"].copy()
    runs["experiment"] = [hochreiter_experiment(r["task"], _row_params(r)) for _, r in runs.iterrows()]
    runs = runs.dropna(subset=["experiment"])
    if runs.empty:
        return pd.DataFrame(columns=columns)
    runs["T"] = [_row_t(r) for _, r in runs.iterrows()]
    runs["to_success"] = [_sequences_to_success(r) for _, r in runs.iterrows()]
    runs["model_name"] = model_labels(runs)
    rows = []
    for (experiment, T, model), group in runs.groupby(
        ["experiment", "T", "model_name"], sort=False, dropna=False
    ):
        solved = group[group["status"] == "solved"]
        mean, std = _mean_std(solved["to_success"])
        test_size = group["eval_batch_size"] if "eval_batch_size" in group else HOCHREITER_TEST_SEQUENCES
        wrong_counts = (group["final_error_rate"] * test_size).round()  # whole sequences per run
        wrong = wrong_counts.mean() * HOCHREITER_TEST_SEQUENCES / np.mean(test_size)
        budget = group["max_sequences"].max() if "max_sequences" in group else math.nan
        note = (
            f"{len(group)} seed(s); budget {budget:,.0f} training sequences; "
            if pd.notna(budget)
            else f"{len(group)} seed(s); "
        ) + f"test: {int(np.mean(test_size)):,} fresh sequences"
        rows.append(
            {
                "experiment": experiment,
                "T": T,
                "model": model,
                "hidden_size": int(group["hidden_size"].iloc[0]) if "hidden_size" in group else math.nan,
                "optimizer": group["optimizer"].iloc[0] if "optimizer" in group else "",
                "runs": len(group),
                "solved": f"{len(solved)}/{len(group)}",
                "sequences_mean": mean,
                "sequences_std": std,
                "wrong_per_2560": float(wrong),
                "test_loss": float(group["final_loss"].mean()) if "final_loss" in group else math.nan,
                "paper_method": "CH" if model.startswith("chunker(") else "LSTM",
                "note": note,
            }
        )
    paper = HOCHREITER1997.rename(columns={"method": "paper_method"})
    table = pd.DataFrame(rows).merge(paper, on=["experiment", "T", "paper_method"], how="left")
    table["sequences_vs_paper"] = table["sequences_mean"] / table["paper_sequences"]
    order = table["experiment"].map(_experiment_order)
    table = table.assign(order=order).sort_values(["order", "T"], kind="stable", na_position="first")
    return table[columns].reset_index(drop=True)


def _experiment_order(experiment: str) -> tuple[int, str]:
    """'1' < '2a' < '2b' < ... < '6b' (numerically by the leading number)."""
    return int(experiment[0]), experiment[1:]


def arjovsky_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per task, T (copy: delay, adding: length) and cell: final loss (mean ± sample std over
    the seeds that did not diverge), our memoryless baseline and the paper's, final loss /
    baseline, the fraction of runs below 0.9 x baseline (using memory at all; a diverged run is
    not), solved and diverged runs, and the paper's finding where it states one.  ``note`` gives
    the optimiser-step budget against the paper's 20,000."""
    columns = [
        "task", "T", "cell", "hidden_size", "runs", "final_loss_mean", "final_loss_std", "baseline",
        "paper_baseline", "loss_over_baseline", "below_baseline", "solved", "diverged",
        "paper_finding", "note", "source",
    ]  # fmt: skip
    needed = {"task", "cell", "status", "final_loss", "final_loss_ratio"}
    if runs.empty or not needed <= set(runs.columns):
        return pd.DataFrame(columns=columns)
    runs = runs[(runs["status"] != "failed") & runs["task"].isin(["copy", "adding"])].copy()
    size = runs["delay"] if "delay" in runs else pd.Series(np.nan, index=runs.index)
    if "length" in runs:
        size = size.where(runs["task"] == "copy", runs["length"])
    runs["T"] = size
    rows = []
    for (task, T, cell), group in runs.dropna(subset=["T"]).groupby(["task", "T", "cell"], sort=False):
        diverged = group["status"] == "diverged"
        finite = group[~diverged]  # a diverged run's last loss (1e24, NaN) says only that it diverged
        mean, std = _mean_std(finite["final_loss"])
        ratio = finite["final_loss_ratio"].astype(float)
        steps = group["max_steps"].max() if "max_steps" in group else math.nan
        rows.append(
            {
                "task": task,
                "T": int(T),
                "cell": cell,
                "hidden_size": int(group["hidden_size"].iloc[0]) if "hidden_size" in group else math.nan,
                "runs": len(group),
                "final_loss_mean": mean,
                "final_loss_std": std,
                "baseline": float((finite["final_loss"] / ratio).mean()) if len(finite) else math.nan,
                "paper_baseline": _paper_baseline(task, int(T)),
                "loss_over_baseline": float(ratio.mean()) if len(finite) else math.nan,
                "below_baseline": float((ratio < 0.9).sum() / len(group)),
                "solved": f"{int((group['status'] == 'solved').sum())}/{len(group)}",
                "diverged": f"{int(diverged.sum())}/{len(group)}",
                "note": (
                    f"{len(group)} seed(s); {steps:,.0f} steps = {steps / ARJOVSKY_ITERATIONS:.0%} of the "
                    f"paper's {ARJOVSKY_ITERATIONS:,}"
                    if pd.notna(steps)
                    else f"{len(group)} seed(s)"
                ),
            }
        )
    if not rows:
        return pd.DataFrame(columns=columns)
    table = pd.DataFrame(rows)
    table = table.merge(ARJOVSKY2016, on=["task", "cell"], how="left")
    table["source"] = table["source"].fillna(_A16.format("1-4.2"))
    return table.sort_values(["task", "T"], kind="stable")[columns].reset_index(drop=True)


# The tables a study can ask for, by the keys it declares in its ``literature`` (study.json):
# key -> (title, caption, runs -> table).
LITERATURE_TABLES: dict[str, tuple[str, str, Callable[[pd.DataFrame], pd.DataFrame]]] = {
    "hochreiter1997": (
        "Hochreiter & Schmidhuber (1997), side by side",
        "Training sequences until the paper's stopping rule (mean ± std over solved seeds) and wrong "
        "predictions per 2,560 fresh test sequences, next to the paper's original LSTM (and its chunker "
        "CH, for our chunker): the share of successful trials and mean sequences to success. "
        "sequences vs paper < 1: fewer sequences than the paper needed.",
        hochreiter_table,
    ),
    "arjovsky2016": (
        "Arjovsky, Shah & Bengio (2016), side by side",
        "Final loss against the memoryless baseline (ours computed by the task, the paper's from its "
        "formula); below baseline: fraction of seeds under 0.9 × baseline.",
        arjovsky_table,
    ),
}


def _section(key: str, runs: pd.DataFrame) -> str:
    """One paper's table as HTML under its title, or a note when no table has that key."""
    if key not in LITERATURE_TABLES:
        known = ", ".join(LITERATURE_TABLES)
        warnings.warn(f"literature={key!r} has no table in the report: known are {known}", stacklevel=3)
        return f'<p class="note">No literature table for {html.escape(repr(key))} (known: {known}).</p>'
    title, caption, build = LITERATURE_TABLES[key]
    table = build(runs)
    body = html_table(table) if not table.empty else '<p class="note">No finished runs to compare yet.</p>'
    return f"<h2>{html.escape(title)}</h2>\n<p>{html.escape(caption)}</p>\n{body}"


def literature_section(frames: Any, study_info: dict[str, Any]) -> str | None:
    """The HTML sections of the papers a study declares in study.json's ``literature`` (keys of
    ``LITERATURE_TABLES``, e.g. ``["hochreiter1997"]``), in that order; None when it declares none.
    An unknown key becomes a note (and a warning), not an error: the report is drawn anyway."""
    keys = study_info.get("literature") or []
    runs = getattr(frames, "runs", None)
    if not keys or not isinstance(runs, pd.DataFrame):
        return None
    return "\n".join(_section(str(key), runs) for key in keys)
