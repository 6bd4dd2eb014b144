"""studies/reproduce_*.py: the grids are what the docstrings promise (fast), and -- slow -- each
quick preset runs end to end and shows the direction of the papers' findings."""

from pathlib import Path

import pandas as pd
import pytest

from seqmem.cli import load_study_module
from seqmem.config import hochreiter_rule
from seqmem.report.literature import HOCHREITER1997, arjovsky_table, hochreiter_experiment, hochreiter_table
from seqmem.results import load_study
from seqmem.sweep import run_study
from seqmem.train import build_model

STUDIES = Path(__file__).resolve().parent.parent / "studies"


@pytest.fixture(scope="module")
def hochreiter():
    return load_study_module(STUDIES / "reproduce_hochreiter1997.py")


@pytest.fixture(scope="module")
def arjovsky():
    return load_study_module(STUDIES / "reproduce_arjovsky2016.py")


# Table 10's weight counts of the paper's nets, and ours: the same net, plus one readout bias per
# output unit where the paper's output units had none (experiments 1-3)
PAPER_WEIGHTS = {
    "1": (276, 7),
    "2a": (10_504, 101),
    "2b": (10_504, 101),
    "2c": (664, 2),
    "3a": (102, 1),
    "3b": (102, 1),
    "3c": (102, 1),
    "4": (93, 0),
    "5": (93, 0),
    "6a": (156, 0),
    "6b": (308, 0),
}


def experiment_of(config):
    return hochreiter_experiment(config.task, dict(config.task_params))


def test_hochreiter_covers_experiments_1_to_6_with_the_papers_stopping_rules(hochreiter):
    full = [run.train for run in hochreiter.grid("full")]
    assert {experiment_of(r) for r in full} == set(PAPER_WEIGHTS)
    assert {r.task_params["length"] for r in full if r.task == "adding"} == {100, 500, 1000}
    for r in full:
        experiment = experiment_of(r)
        if experiment.startswith("3"):  # ST2 on a test set of 256 sequences
            assert (r.stopping, r.eval_batch_size) == ("eval", 256)
        else:  # the training stream; the final test on 2,560 sequences (the Reber grammar: 256)
            assert (r.stopping, r.eval_batch_size) == ("hochreiter1997", 256 if experiment == "1" else 2560)
    models = {(experiment_of(r), r.model, r.cell) for r in full}
    chunkers = {(e, cell) for e, model, cell in models if model == "chunker"}
    assert chunkers == {("2a", "rnn"), ("2b", "rnn")}
    for experiment in PAPER_WEIGHTS:
        cells = {cell for e, model, cell in models if e == experiment and model == "sequence"}
        assert cells == {"lstm1997", "lstm_chrono", "gru", "rnn"}


def test_hochreiter_paper_sized_nets_learn_online_with_the_papers_weights(hochreiter):
    for run in hochreiter.grid("full"):
        config = run.train
        online = (config.batch_size, config.optimizer, config.momentum, config.grad_clip) == (
            1,
            "sgd",
            0.0,
            None,
        )
        assert online == (config.cell == "lstm1997" or config.model == "chunker")
        # experiment 2a/2b's LSTM grows as the paper's did: the cell joins at the error's plateau
        growing = config.cell == "lstm1997" and config.model == "sequence" and config.task == "long_lag"
        assert (config.cell_joins_at_plateau is not None) == growing
        if config.cell != "lstm1997" or config.seed != 0:
            continue
        paper, readout_biases = PAPER_WEIGHTS[experiment_of(config)]
        weights = sum(p.numel() for p in build_model(config).parameters())
        assert weights == paper + readout_biases, experiment_of(config)
        assert config.logistic_output == (config.make_task().kind == "regression")


# where ``full`` decides the bound (sequences to success within 3 x the paper's mean) the
# 1997 net gets 3 x the paper's count, adding T = 500 the paper's count: each plus the stopping
# rule's window, since sequences to success count to the window's start
FULL_BUDGET_OVER_PAPER = {
    ("1", None): 3,
    ("2a", 100): 3,
    ("2b", 100): 3,
    ("2c", 100): 3,
    ("3a", 100): 3,
    ("3b", 100): 3,
    ("4", 100): 3,
    ("4", 500): 1,
}


def test_hochreiter_full_gives_the_1997_net_the_papers_count_where_its_claim_is_decided(hochreiter):
    lstm = HOCHREITER1997.query("method == 'LSTM'")
    paper = {
        (e, None if pd.isna(t) else int(t)): n
        for e, t, n in lstm[["experiment", "T", "paper_sequences"]].values
    }
    budgets = {}
    for run in hochreiter.grid("full"):
        config = run.train
        if config.cell == "lstm1997" and config.model == "sequence":
            experiment = experiment_of(config)
            params = config.task_params
            T = None if experiment == "1" else params.get("length", params.get("p", params.get("q")))
            window = hochreiter_rule(config.task)[0] if config.stopping == "hochreiter1997" else 0
            budgets.setdefault((experiment, T), set()).add(config.max_sequences - window)
    assert set(budgets) == set(paper) and all(len(b) == 1 for b in budgets.values())  # one per seed
    for key, factor in FULL_BUDGET_OVER_PAPER.items():
        assert budgets[key].pop() >= factor * paper[key], key


def test_hochreiter_adding_t100_runs_the_1997_net_once_more_on_cross_entropy_at_a_quarter_alpha(hochreiter):
    runs = [run.train for run in hochreiter.grid("full") if run.train.logistic_loss == "cross_entropy"]
    assert {(r.cell, experiment_of(r), r.task_params["length"], r.lr, r.seed) for r in runs} == {
        ("lstm1997", "4", 100, 0.5 / 4, seed) for seed in (0, 1)
    }
    (squared,) = [
        run.train
        for run in hochreiter.grid("full")
        if run.train.cell == "lstm1997"
        and run.train.seed == 0
        and run.train.task_params == runs[0].task_params
        and run.train.logistic_loss == "squared"
    ]
    # the same net and protocol otherwise
    assert {**runs[0].to_dict(), "lr": None, "logistic_loss": None, "seed": 0} == {
        **squared.to_dict(),
        "lr": None,
        "logistic_loss": None,
    }


def test_hochreiter_quick_is_small(hochreiter):
    quick = [run.train for run in hochreiter.grid("quick")]
    assert len(quick) <= 4 and all(r.max_sequences <= 64_000 for r in quick)


def test_arjovsky_hidden_sizes_per_cell_and_task(arjovsky):
    sizes = {(r.train.cell, r.train.task): r.train.hidden_size for r in arjovsky.grid("full")}
    assert sizes[("rnn", "copy")] == sizes[("irnn", "copy")] == 80
    assert sizes[("lstm", "copy")] == 40
    assert {size for (cell, task), size in sizes.items() if task == "adding" and cell != "urnn"} == {128}
    assert {(r.train.optimizer, r.train.lr, r.train.batch_size) for r in arjovsky.grid("full")} == {
        ("rmsprop", 1e-3, 20)
    }


def test_arjovsky_unitary_and_orthogonal_cells_get_their_papers_sizes_and_rates(arjovsky):
    runs = {(r.train.cell, r.train.task): r.train for r in arjovsky.grid("full")}
    assert runs[("urnn", "copy")].hidden_size == 256  # 128 complex units
    assert runs[("urnn", "adding")].hidden_size == 1024  # 512 complex units
    assert runs[("exprnn", "adding")].hidden_size == 128
    assert runs[("exprnn", "copy")].hidden_size == 190
    assert {cell: config.orthogonal_lr for (cell, _), config in runs.items() if config.orthogonal_lr} == {
        "exprnn": 1e-4
    }


@pytest.mark.slow
def test_hochreiter_quick_lstm_solves_the_adding_problem_and_the_rnn_does_not(hochreiter, tmp_path):
    study_dir = run_study(hochreiter, "quick", out=tmp_path, workers=2, progress=False)
    table = hochreiter_table(load_study(study_dir).runs).set_index(["experiment", "model"])
    assert table.loc[("4", "lstm_chrono"), "solved"] == "1/1"
    assert table.loc[("4", "lstm_chrono"), "wrong_per_2560"] < 0.01 * 2560
    assert table.loc[("4", "rnn"), "solved"] == "0/1"


@pytest.mark.slow
def test_arjovsky_quick_tanh_rnn_stays_at_the_copy_baseline(arjovsky, tmp_path):
    study_dir = run_study(arjovsky, "quick", out=tmp_path, workers=2, progress=False)
    table = arjovsky_table(load_study(study_dir).runs).set_index("cell")
    assert table.loc["rnn", "solved"] == "0/1"
    assert table.loc["rnn", "loss_over_baseline"] > 0.9
