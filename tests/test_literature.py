"""seqmem/report/literature.py: the paper-vs-seqmem tables on synthetic runs frames, checked
against numbers recomputed here (and the papers' baselines against our tasks' closed forms)."""

import html
import math
import re
import statistics
import warnings
from types import SimpleNamespace

import pandas as pd
import pytest

import tasks
from seqmem.report.html import write_report
from seqmem.report.literature import (
    HOCHREITER1997,
    LITERATURE_TABLES,
    arjovsky_table,
    hochreiter_experiment,
    hochreiter_table,
    literature_section,
)


def hochreiter_run(cell, status, seen, error_rate, *, task="adding", length=100, test=2560, **extra):
    params = {"variant": "hochreiter1997"} if task == "adding" else {}
    return {
        "task": task, "cell": cell, "length": length, "status": status, "sequences_seen": seen,
        "final_error_rate": error_rate, "final_loss": error_rate / 10, "eval_batch_size": test,
        "max_sequences": 200_000, "hidden_size": 64, "optimizer": "adam", **params, **extra,
    }  # fmt: skip


@pytest.fixture
def hochreiter_runs() -> pd.DataFrame:
    return pd.DataFrame(
        [
            hochreiter_run("lstm", "solved", 40_000, 0.0, seed=0),
            hochreiter_run("lstm", "solved", 60_000, 2 / 2560, seed=1),
            hochreiter_run("lstm", "budget_exhausted", 200_000, 0.5, seed=2),
            hochreiter_run("rnn", "budget_exhausted", 200_000, 0.85, seed=0),
            hochreiter_run("rnn", "failed", 0, math.nan, seed=1),
            hochreiter_run("gru", "solved", 30_000, 0.01, seed=0, test=256),
            hochreiter_run("lstm", "solved", 20_000, 0.0, seed=0, task="temporal_order", n_markers=3),
        ]
    )


@pytest.mark.parametrize(
    ("task", "params", "experiment"),
    [
        ("adding", {"variant": "hochreiter1997"}, "4"),
        ("adding", {"variant": "arjovsky2016"}, None),
        ("multiplication", {}, "5"),
        ("temporal_order", {"n_markers": 2}, "6a"),
        ("temporal_order", {"n_markers": 3}, "6b"),
        ("copy", {}, None),
        ("embedded_reber", {"max_length": 60}, "1"),
        ("long_lag", {"p": 100, "variant": "2a"}, "2a"),
        ("long_lag", {"p": 100, "variant": "2b"}, "2b"),
        ("very_long_lag", {"q": 100, "p": 100}, "2c"),
        ("two_sequence", {"variant": "3c"}, "3c"),
    ],
)
def test_hochreiter_experiment_of_a_task(task, params, experiment):
    assert hochreiter_experiment(task, params) == experiment


def test_hochreiter_table_puts_our_statistics_next_to_the_papers(hochreiter_runs):
    table = hochreiter_table(hochreiter_runs).set_index(["experiment", "model"])
    lstm = table.loc[("4", "lstm")]
    assert lstm["solved"] == "2/3" and lstm["runs"] == 3
    assert lstm["sequences_mean"] == pytest.approx(50_000)  # over the solved runs only
    assert lstm["sequences_std"] == pytest.approx(statistics.stdev([40_000, 60_000]))
    assert lstm["wrong_per_2560"] == pytest.approx((0 + 2 + 0.5 * 2560) / 3)
    paper = HOCHREITER1997.set_index(["experiment", "T"]).loc[("4", 100)]
    assert (lstm["paper_sequences"], lstm["paper_wrong"]) == (paper["paper_sequences"], paper["paper_wrong"])
    assert lstm["sequences_vs_paper"] == pytest.approx(50_000 / paper["paper_sequences"])
    assert "200,000" in lstm["note"] and "3 seed(s)" in lstm["note"]


def test_hochreiter_table_skips_failed_runs_and_scales_wrong_to_2560(hochreiter_runs):
    table = hochreiter_table(hochreiter_runs).set_index(["experiment", "model"])
    rnn = table.loc[("4", "rnn")]
    assert rnn["solved"] == "0/1" and math.isnan(rnn["sequences_mean"])
    assert table.loc[("4", "gru"), "wrong_per_2560"] == pytest.approx(round(0.01 * 256) * 10)  # 3 of 256
    assert table.loc[("4", "gru"), "sequences_mean"] == 30_000
    assert math.isnan(table.loc[("4", "gru"), "sequences_std"])  # one solved seed: no spread
    assert table.loc[("6b", "lstm"), "paper_sequences"] == 571_100


def test_hochreiter_table_covers_every_experiment_and_the_chunker():
    runs = pd.DataFrame(
        [
            hochreiter_run("lstm1997", "solved", 16_000, 0.0, task="long_lag", p=100, variant="2a", seed=0),
            hochreiter_run("lstm1997", "solved", 17_000, 0.0, task="long_lag", p=100, variant="2a", seed=1),
            hochreiter_run(
                "rnn", "solved", 11_000, 0.0, task="long_lag", p=100, variant="2a", model="chunker"
            ),
            hochreiter_run(
                "rnn", "budget_exhausted", 30_000, 0.4, task="long_lag", p=100, variant="2b", model="chunker"
            ),
            hochreiter_run("lstm1997", "solved", 3_000, 0.0, task="embedded_reber", max_length=60),
            hochreiter_run("lstm1997", "solved", 50_000, 0.0, task="two_sequence", length=100, variant="3a"),
            hochreiter_run("gru", "solved", 9_000, 0.0, task="very_long_lag", q=100, p=100),
        ]
    )
    runs["stopping"] = ["hochreiter1997"] * 5 + ["eval", "hochreiter1997"]
    table = hochreiter_table(runs)
    assert table["experiment"].tolist() == ["1", "2a", "2a", "2b", "2c", "3a"]  # in the paper's order
    table = table.set_index(["experiment", "model"])
    # the stream rule's window of 10,000 right sequences (experiment 1: 512) is not counted
    assert table.loc[("2a", "lstm1997"), "sequences_mean"] == pytest.approx(6_500)
    assert table.loc[("2a", "lstm1997"), "paper_sequences"] == 5_040
    assert table.loc[("1", "lstm1997"), "sequences_mean"] == 3_000 - 512 and math.isnan(
        table.loc[("1", "lstm1997"), "T"]
    )
    assert table.loc[("3a", "lstm1997"), "sequences_mean"] == 50_000  # a test-set rule: nothing to subtract
    chunker = table.loc[("2a", "chunker(rnn)")]
    assert (chunker["paper_method"], chunker["paper_success"], chunker["paper_sequences"]) == (
        "CH",
        0.33,
        32_400,
    )
    assert chunker["sequences_mean"] == 1_000
    assert table.loc[("2b", "chunker(rnn)"), "solved"] == "0/1"
    assert table.loc[("2b", "chunker(rnn)"), "paper_success"] == 0.0
    assert table.loc[("2c", "gru"), "paper_sequences"] == 31_000


def test_tables_without_reproduction_runs_are_empty():
    unrelated = pd.DataFrame([hochreiter_run("lstm", "solved", 1, 0.0, task="copy")])
    assert hochreiter_table(unrelated).empty
    assert hochreiter_table(pd.DataFrame({"run_id": []})).empty
    assert arjovsky_table(pd.DataFrame({"run_id": []})).empty


def arjovsky_run(task, T, cell, ratio, seed=0):
    task_obj = tasks.make_task(task, delay=T) if task == "copy" else tasks.make_task(task, length=T)
    baseline = task_obj.baseline_loss()
    size = {"delay": T} if task == "copy" else {"length": T, "variant": "arjovsky2016"}
    return {
        "task": task, "cell": cell, "status": "budget_exhausted", "final_loss": ratio * baseline,
        "final_loss_ratio": ratio, "max_steps": 3000, "hidden_size": 80, "seed": seed, **size,
    }  # fmt: skip


def test_arjovsky_table_reports_loss_over_baseline_and_the_papers_baselines():
    runs = pd.DataFrame(
        [
            arjovsky_run("copy", 100, "rnn", 1.0, 0),
            arjovsky_run("copy", 100, "rnn", 0.8, 1),
            arjovsky_run("copy", 300, "gru", 0.1),
            arjovsky_run("adding", 200, "lstm", 0.02),
        ]
    )
    table = arjovsky_table(runs).set_index(["task", "T", "cell"])
    rnn = table.loc[("copy", 100, "rnn")]
    assert rnn["loss_over_baseline"] == pytest.approx(0.9)
    assert rnn["below_baseline"] == pytest.approx(0.5)
    assert rnn["final_loss_std"] == pytest.approx(statistics.stdev([1.0, 0.8]) * rnn["baseline"])
    # the paper's baselines (their formulas) agree with our tasks' closed forms
    assert rnn["paper_baseline"] == pytest.approx(rnn["baseline"])
    assert table.loc[("adding", 200, "lstm"), "paper_baseline"] == pytest.approx(
        table.loc[("adding", 200, "lstm"), "baseline"], abs=5e-4
    )
    assert "baseline" in rnn["paper_finding"] and pd.isna(table.loc[("copy", 300, "gru"), "paper_finding"])
    assert "15%" in rnn["note"]


def test_arjovsky_table_counts_diverged_runs_apart_from_the_losses():
    exploded = arjovsky_run("copy", 100, "irnn", 1e24, 1) | {"status": "diverged"}
    nan = arjovsky_run("copy", 200, "irnn", math.nan) | {"status": "diverged"}
    runs = pd.DataFrame([arjovsky_run("copy", 100, "irnn", 0.5, 0), exploded, nan])
    table = arjovsky_table(runs).set_index(["task", "T", "cell"])
    both = table.loc[("copy", 100, "irnn")]
    assert both["diverged"] == "1/2" and both["loss_over_baseline"] == pytest.approx(0.5)
    assert both["below_baseline"] == pytest.approx(0.5)  # the diverged run does not count as below
    alone = table.loc[("copy", 200, "irnn")]
    assert alone["diverged"] == "1/1" and math.isnan(alone["loss_over_baseline"])
    assert alone["below_baseline"] == 0.0


def test_literature_section_is_chosen_by_the_studys_declared_keys(hochreiter_runs):
    frames = SimpleNamespace(runs=hochreiter_runs)
    assert literature_section(frames, {"name": "copy_length"}) is None
    assert literature_section(frames, {"name": "copy_length", "literature": []}) is None
    # the name alone no longer picks a table: only the declaration does
    assert literature_section(frames, {"name": "reproduce_hochreiter1997"}) is None
    section = literature_section(frames, {"name": "my_study", "literature": ["hochreiter1997"]})
    assert "Hochreiter &amp; Schmidhuber (1997)" in section and "<table" in section
    assert "74000" in section  # the paper's column is in the table
    assert "Arjovsky" not in section


def test_literature_section_draws_every_declared_table_in_order(hochreiter_runs):
    frames = SimpleNamespace(runs=hochreiter_runs)
    section = literature_section(frames, {"literature": ["arjovsky2016", "hochreiter1997"]})
    titles = re.findall(r"<h2>(.*?)</h2>", section)
    assert titles == [html.escape(LITERATURE_TABLES[key][0]) for key in ("arjovsky2016", "hochreiter1997")]
    assert "No finished runs to compare yet" in section  # these runs lack final_loss_ratio


def test_an_unknown_literature_key_is_a_note_not_an_error(hochreiter_runs):
    frames = SimpleNamespace(runs=hochreiter_runs)
    with pytest.warns(UserWarning, match=r"literature='smith2030' has no table.*hochreiter1997"):
        section = literature_section(frames, {"literature": ["smith2030", "hochreiter1997"]})
    assert 'class="note">No literature table for' in section and "<table" in section


def test_the_report_page_includes_the_section(tmp_path, hochreiter_runs):
    runs = hochreiter_runs.assign(run_id=[f"r{i}" for i in range(len(hochreiter_runs))])
    frames = SimpleNamespace(runs=runs, metrics=pd.DataFrame(), analysis=pd.DataFrame())
    info = {"name": "reproduce_hochreiter1997", "preset": "quick", "literature": ["hochreiter1997"]}
    with warnings.catch_warnings():  # figures without data may warn; not what is tested here
        warnings.simplefilter("ignore")
        page = write_report(frames, info, tmp_path)
    assert "side by side" in page.read_text()


def test_arjovsky_table_states_the_papers_urnn_finding_beside_ours_and_none_for_the_exprnn():
    runs = pd.DataFrame([arjovsky_run("copy", 500, "urnn", 0.01), arjovsky_run("copy", 500, "exprnn", 0.02)])
    table = arjovsky_table(runs).set_index(["task", "T", "cell"])
    urnn = table.loc[("copy", 500, "urnn")]
    assert "100,000 training examples" in urnn["paper_finding"] and urnn["source"].startswith("Arjovsky")
    assert pd.isna(table.loc[("copy", 500, "exprnn"), "paper_finding"])  # not in that paper
