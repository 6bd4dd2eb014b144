"""Reproduce Hochreiter & Schmidhuber (1997), experiments 1-6: the paper's own LSTM (``lstm1997``,
paper-sized, trained online as in the paper) against a modern LSTM, a GRU and the tanh RNN, and
Schmidhuber's chunker on experiment 2, each with the paper's success criterion.

The study is one grid per experiment (``EXPERIMENTS``), joined: the paper-sized net differs per
experiment (blocks, gate biases, learning rate, output units), which one product grid cannot say.

The paper-sized 1997 LSTM (``lstm1997``; seqmem/cells/lstm1997.py) per experiment, from the
paper's Table 10 and sections 5.1-5.6: its blocks x cells, gate-bias staggering, squashing,
connectivity, initialisation range and learning rate alpha; every weight count of Table 10 is
reproduced (plus one readout bias where the paper's output units had none: experiments 1-3).  It
learns online -- one sequence per update, plain gradient descent, no momentum, no clipping
(``ONLINE``) -- with the paper's truncated gradient, and:

- regression tasks (3, 4, 5): the paper's logistic output unit (``logistic_output``) and squared
  error.  The paper descends E/2 (its eq. 19); our squared error has no 1/2, so the rate here is
  alpha / 2: the same weight updates.  On adding T = 100 the net also runs with that unit trained
  on cross-entropy (``logistic_loss='cross_entropy'``) at alpha / 4: with the squared error it
  learns the sum but not the targets near 0 and 1, where f'(net) all but stops their pull, and
  misses the paper's 2,000-in-a-row rule (README).
- classification tasks (1, 2, 6): the tasks' softmax outputs with cross-entropy, and the paper's
  criteria applied to the softmax probabilities (tasks/long_lag.py, temporal_order.py, reber.py).
  The paper used one logistic unit per class with squared error; a paper-faithful run would need
  those units *and* criteria read off them, which the tasks do not offer -- so here alpha meets a
  different error (cross-entropy's gradient p - t lacks the factor y (1 - y) <= 1/4 of the
  paper's, so these steps are larger).  Where the paper offers several
  rates, the smallest is taken: experiment 1 at the paper's alpha = 0.5 did not learn within 20,000
  strings (seeds 0 and 1: the repeated T/P at chance, the test loss rising from 0.58 to 0.99 and
  falling again), at its alpha = 0.1 seed 0 predicted all 256 test strings right after 30,000.
  Experiment 2 (the paper: alpha = 1 only) runs at alpha / 4 = 0.25, so that no step exceeds the
  paper's largest (f' <= 1/4): at alpha = 1 the grown net's first updates after the cell joins
  switched the cell off for good (README), at 0.25 seed 0 met the 2a criterion after 4,609
  sequences (the paper: 5,040).
- experiments 1 and 2 score every step: their error is summed over a sequence's steps, as the
  paper's online learner did (``loss_reduction='sequence_sum'``); elsewhere one step is scored.
- experiment 2a/2b nets: no recurrent weights besides the carousel, no output gate, g = sigmoid,
  h = identity, and outputs that also see the inputs (``input_to_output``).  The net grows as the
  paper's did ("memory cell and input gate are added once the error has stopped decreasing"):
  the outputs start from the inputs alone, and the cell joins once the mean training loss of 500
  sequences is less than 1 % below that of the 500 before (``cell_joins_at_plateau``; the paper
  does not say how it decided).

Modern cells (``lstm_chrono``, ``gru``, ``rnn``, 64 units): Adam lr 1e-2, batches of 32, clipping at
1 (``MODERN``), as in the earlier reproduction of experiments 4-6.  The chunker (seqmem/chunker.py):
two tanh RNNs of one unit each, as the paper's "CH" had (both nets "like RTRL's"), online like
``lstm1997`` and at its rate for experiment 2, alpha / 4 (Table 2: CH at alpha = 1): at 0.1 and
below its higher unit saturated before the inputs stopped reaching it (README), at 0.25 seed 0
met the 2a criterion after 925 sequences.

Stopping (seqmem.config.hochreiter_rule): experiments 4-6 stop once the 2,000 most recent
training sequences were all right and their mean error was below 0.01; experiment 2 needs 10,000
successive sequences right (ABS(0.25), 2c ABS(0.2)); experiment 1 512 successive strings predicted
right (the paper: its 256 training and 256 test strings).  The report's table counts sequences to
success up to the start of that window, which is how the paper's counts read (2a: "success after
5,040" with a 10,000-sequence criterion).  Experiment 3 stops on a test set of 256 sequences
(ST2, ``stopping='eval'``).  The final test: 2,560 fresh sequences (256 for experiments 1 and 3).

Budgets. ``full`` aims at about 90 minutes on 2 cores and took 40 (README, "Cost": measured from an
empty folder, 2026-11-30, AMD EPYC; 99, with budgets 2,000-10,000 smaller, on a machine 2.4-2.9 x
slower that morning). A training sequence takes the paper-sized nets 0.7-2.0 ms there (online,
the compiled cell of seqmem/cells/lstm1997.py), the chunker 5.6-6.1 ms, the modern cells 0.1-1.2
ms at T <= 100 in batches of 32 and up to 9.7 ms at T = 1000 (the GRU). So the budgets (sequences;
a run that does not succeed within its budget is reported as not reached) go where the
paper's claims are decided: the online nets' ``Experiment.budget`` gives 3 x the paper's mean count
to adding T = 100, experiments 1, 2a, 2b and 2c, and the paper's count to adding T = 500, each plus
its stopping rule's window (sequences to success count to the window's start, so a run that meets
the rule right at the bound still stops within its budget): 224,000, 65,702, 25,120, 27,040,
103,000 and 211,000; 120,000 and 130,000 for 3a and 3b (3 x theirs: a test-set rule, no window);
20,000-40,000 elsewhere, which leaves 4 at T = 1000 (853,000), 5 (482,000) and 6b (571,100) far
below the paper's counts; the modern cells 80,000 (``MODERN_BUDGET``), 40,000 on experiment 2 and
adding T = 500 and 10,000 at T = 1000 (``Experiment.modern_budget``); the tanh RNN, the control, at
most 40,000 (``RNN_BUDGET``). The modern cells' runs that fail spend their whole budget: the cuts
(from 80,000, and 20,000 at T = 1000) are where none had learned before.
``paper`` is the unscaled protocol (10 seeds, the paper's budgets) for a cluster:
``python studies/reproduce_hochreiter1997.py --preset paper --executor dask --scheduler ADDR``.
``quick`` (about a minute): experiment 4 at T = 100, lstm_chrono against the tanh RNN.

    python studies/reproduce_hochreiter1997.py --preset quick
    python studies/reproduce_hochreiter1997.py --preset full
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from seqmem.cli import main_for_study
from seqmem.sweep import JoinedStudy, Study

MODERN = {
    "optimizer": "adam",
    "lr": 1e-2,
    "batch_size": 32,
    "grad_clip": 1.0,
    "hidden_size": 64,
    "eval_every": 500,
}
# one sequence per update; a held-out evaluation every 5,000 of them (a history row, not the stop)
ONLINE = {"optimizer": "sgd", "momentum": 0.0, "batch_size": 1, "grad_clip": None, "eval_every": 5000}
MODERN_CELLS = ["lstm_chrono", "gru", "rnn"]
# the rates on cross-entropy -- experiment 2's (lstm1997 and the chunker: softmax outputs) and
# experiment 4's second lstm1997 run (its logistic output) -- are the paper's alpha times this:
# cross-entropy's gradient lacks the paper's factor f'(net) <= 1/4, so no step exceeds its largest
CROSS_ENTROPY_RATE = 1 / 4
PRESETS = ("quick", "full", "paper")


def paper_net(hidden: int, lr: float, init: float, **cell_params: object) -> dict:
    """The overrides that make ``lstm1997`` the paper's net: online learning, its size and layout,
    every weight (readout included) drawn from U[-init, init]."""
    cell_params = {"init_range": init, **cell_params}
    return {**ONLINE, "hidden_size": hidden, "lr": lr, "cell_params": cell_params, "readout_init_range": init}


# experiment 2a/2b's LSTM: one cell with its input gate, nothing else recurrent, no biases
EXPERIMENT_2_NET = paper_net(
    1,
    1.0 * CROSS_ENTROPY_RATE,  # the paper's alpha = 1
    0.2,
    bias="none",
    output_gate=False,
    recurrent=False,
    squashing="logistic_identity",
) | {"input_to_output": True, "loss_reduction": "sequence_sum", "cell_joins_at_plateau": 500}
CHUNKER = {
    **ONLINE,
    "model": "chunker",
    "cell": "rnn",
    "hidden_size": 1,
    "lr": 1.0 * CROSS_ENTROPY_RATE,  # Table 2's CH at alpha = 1, as lstm1997's experiment 2 net
    "input_to_output": True,
    "loss_reduction": "sequence_sum",
    "readout_init_range": 0.2,
}


@dataclass(frozen=True)
class Experiment:
    """One experiment: its task, protocol and paper-sized net, the online nets' training budget
    per preset (sequences), the modern cells' budget where it is not ``MODERN_BUDGET``, whether
    the chunker runs it, the models it runs in ``quick`` (none: not in ``quick``), and where set
    the rate at which the paper-sized net runs once more with its logistic output trained on
    cross-entropy (``logistic_loss``; the report names it "lstm1997, cross-entropy")."""

    key: str
    task: str
    task_params: dict
    protocol: dict
    net: dict
    budget: dict
    chunker: bool = False
    quick: tuple[str, ...] = ()
    modern_budget: dict | None = None
    cross_entropy_lr: float | None = None


STREAM = {"stopping": "hochreiter1997", "eval_batch_size": 2560}
TEST_SET = {"stopping": "eval", "eval_batch_size": 256}  # experiment 3: ST2 on 256 test sequences
SEEDS = {"quick": [0], "full": [0, 1], "paper": list(range(10))}
MODERN_BUDGET = {"quick": 64_000, "full": 80_000, "paper": 2_000_000}
# the tanh RNN, the control, at most this in full: its only successes came within 15,000 (1, 3b)
RNN_BUDGET = {"full": 40_000}

EXPERIMENTS = [
    Experiment(
        "1",
        "embedded_reber",
        {},
        {"stopping": "hochreiter1997", "eval_batch_size": 256},
        # Table 1's 3 blocks x 2 cells at its alpha = 0.1 (100 % success after 21,730), not its 0.5
        # (8,440): with softmax outputs and cross-entropy, alpha = 0.5 did not learn (module docstring)
        paper_net(6, 0.1, 0.2, block_size=2, bias="gates", output_gate_bias=[-1, -2, -3])
        | {"loss_reduction": "sequence_sum"},
        {"full": 3 * 21_730 + 512, "paper": 200_000},
    ),
    *[
        Experiment(
            variant,
            "long_lag",
            {"p": 100, "variant": variant},
            STREAM,
            EXPERIMENT_2_NET,
            {"full": 3 * paper + 10_000, "paper": 5_000_000},
            chunker=True,
            # 2.6 x where the paper's LSTM stopped on 2a (5,040 + the 10,000-sequence window); the
            # modern cells' earlier 80,000 did not learn 2a or 2b either (README)
            modern_budget={"full": 40_000},
        )
        for variant, paper in (("2a", 5_040), ("2b", 5_680))
    ],
    Experiment(
        "2c",
        "very_long_lag",
        {"q": 100, "p": 100},
        STREAM,
        paper_net(2, 0.01, 0.2, bias="none"),
        {"full": 3 * 31_000 + 10_000, "paper": 5_000_000},  # the paper's 31,000 at q = p = 100 (Table 3)
    ),
    *[
        Experiment(
            f"3{variant}",
            "two_sequence",
            {"length": 100, "n_informative": 3, "variant": f"3{variant}"},
            TEST_SET | {"eval_every": 50},  # every 1,600 sequences
            paper_net(3, alpha / 2, 0.1, input_gate_bias=[-1, -3, -5], output_gate_bias=[-2, -4, -6])
            | {"logistic_output": True, "eval_every": 500},
            budget,
        )
        for variant, alpha, budget in (
            # 3 x the paper's means (39,850 and 43,250; Tables 4, 5); 3c's 3 x 269,650 is out of reach
            ("a", 1.0, {"full": 120_000, "paper": 1_000_000}),
            ("b", 1.0, {"full": 130_000, "paper": 1_000_000}),
            ("c", 0.1, {"full": 30_000, "paper": 2_000_000}),
        )
    ],
    *[
        Experiment(
            "4" if length == 100 else f"4_T{length}",
            "adding",
            {"length": length, "variant": "hochreiter1997"},
            STREAM,
            paper_net(4, 0.5 / 2, 0.1, block_size=2, input_gate_bias=[-3, -6]) | {"logistic_output": True},
            budget,
            quick=("lstm_chrono", "rnn") if length == 100 else (),
            modern_budget=modern_budget,
            # where the squared error misses the paper's rule (README): alpha / 4, as on experiment 2
            cross_entropy_lr=0.5 * CROSS_ENTROPY_RATE if length == 100 else None,
        )
        for length, budget, modern_budget in (
            # 3 x the paper's mean of 74,000: the bound on sequences to success
            (100, {"full": 3 * 74_000 + 2_000, "paper": 2_000_000}, None),
            # the paper's mean count; the modern cells 40,000 (lstm_chrono stops by 35,000, the GRU
            # and the tanh RNN stayed at the baseline through their earlier 80,000, README)
            (500, {"full": 209_000 + 2_000, "paper": 2_000_000}, {"full": 40_000}),
            # the 1997 net 20,000 sequences of 1,000 steps, the modern cells 10,000 (the GRU's take
            # 5 x the 1997 net's time a sequence: 9.7 against 1.9 ms in the latest full)
            (1000, {"full": 20_000, "paper": 4_000_000}, {"full": 10_000}),
        )
    ],
    Experiment(
        "5",
        "multiplication",
        {"length": 100},
        STREAM,
        paper_net(4, 0.1 / 2, 0.1, block_size=2) | {"logistic_output": True},
        {"full": 40_000, "paper": 2_000_000},
    ),
    *[
        Experiment(
            f"6{variant}",
            "temporal_order",
            {"length": 100, "n_markers": markers},
            STREAM,
            paper_net(2 * markers, alpha, 0.1, block_size=2, input_gate_bias=[-2, -4, -6][:markers]),
            {"full": 40_000, "paper": 2_000_000},
        )
        for variant, markers, alpha in (("a", 2, 0.5), ("b", 3, 0.1))
    ],
]


def _presets(experiment: Experiment, models: list[str]) -> dict:
    """The presets of one grid of ``experiment`` over ``models`` (its cells, or ["chunker"])."""
    presets = {}
    for preset in PRESETS:
        run = [m for m in models if m in experiment.quick] if preset == "quick" else models
        if not run:
            continue
        modern_budget = (experiment.modern_budget or {}).get(preset, MODERN_BUDGET[preset])
        modern = {"max_sequences": modern_budget}
        online = {"max_sequences": experiment.budget.get(preset, MODERN_BUDGET[preset])}
        overrides = {"lstm1997": {**experiment.net, **online}} if "lstm1997" in run else {}
        if "rnn" in run and preset in RNN_BUDGET:
            overrides["rnn"] = {"max_sequences": min(modern_budget, RNN_BUDGET[preset])}
        presets[preset] = {
            "base": online if run == ["chunker"] else modern,
            "axes": {"seed": SEEDS[preset]} | ({} if run == ["chunker"] else {"cell": run}),
            "overrides": {"cell": overrides} if overrides else {},
        }
    return presets


def _part(experiment: Experiment) -> list[Study]:
    """The grids of one experiment: lstm1997 and the modern cells, and the chunker where it runs."""
    base = {**MODERN, "task": experiment.task, "task_params": experiment.task_params, **experiment.protocol}
    models = ["lstm1997", *MODERN_CELLS]
    parts = [
        Study(
            name=f"hochreiter1997_{experiment.key}",
            base=base,
            axes={"cell": models, "seed": [0]},
            presets=_presets(experiment, models),
        )
    ]
    if experiment.cross_entropy_lr is not None:
        net = experiment.net | {"logistic_loss": "cross_entropy", "lr": experiment.cross_entropy_lr}
        parts.append(
            Study(
                name=f"hochreiter1997_{experiment.key}_cross_entropy",
                base=base,
                axes={"cell": ["lstm1997"], "seed": [0]},
                presets=_presets(replace(experiment, net=net), ["lstm1997"]),
            )
        )
    if experiment.chunker:
        parts.append(
            Study(
                name=f"hochreiter1997_{experiment.key}_chunker",
                base={**base, **CHUNKER},
                axes={"seed": [0]},
                presets=_presets(experiment, ["chunker"]),
            )
        )
    return parts


STUDY = JoinedStudy(
    name="reproduce_hochreiter1997",
    literature=("hochreiter1997",),  # the report's paper-vs-seqmem table
    base={},
    presets={preset: {} for preset in PRESETS},
    parts=tuple(part for experiment in EXPERIMENTS for part in _part(experiment)),
)

if __name__ == "__main__":
    raise SystemExit(main_for_study(STUDY))
