"""Reproduce Arjovsky, Shah & Bengio (2016), the copy and adding problems: do the tanh RNN and the
LSTM stay at the memoryless baseline, what do the RNN remedies, a forget-gate bias of 1 and
chrono initialisation change, and does their unitary RNN (and the later expRNN) escape it?

Their setup: copy delays T in {100, 200, 300, 500} (baseline 10 ln 8 / (T + 20)); adding
(variant ``arjovsky2016``) lengths T in {100, 200, 400, 750} (baseline MSE 0.167); RMSprop,
lr 1e-3, batch 20; hidden sizes RNN 80 / 128, IRNN 80 / 128, LSTM 40 / 128, uRNN 128 / 512
complex units (copy / adding).  We give ``orthogonal_rnn`` the RNN's sizes and ``gru`` and
``lstm_chrono`` the LSTM's; ``urnn`` gets 256 real = 128 complex units on copy and 1024 real = 512
complex units on adding, and ``exprnn`` 190 units on copy (the expRNN paper's copy-task size) and
128 on adding, with its skew-symmetric parameter at lr 1e-4 (that paper's 10x smaller rate).  A
size per cell that also differs per task is more than one product grid says, so the study joins
two grids, copy and adding (``JoinedStudy``).  Our ``lstm`` has forget-gate bias 1 (Tallec &
Ollivier 2018 report that this alone beats the paper's LSTM baseline); seqmem has no preset with
forget bias 0, the usual default then, so the paper's own LSTM baseline is not re-run here.
The report's literature table gives final loss / baseline per cell and T, the learning-curve
figure the curves.

Budgets, openly scaled: the paper trains 20,000 iterations; ``full`` trains 3,000 (15%), one
seed.  Its 48 runs of the six unconstrained cells took 41 minutes on 2 cores (2026-11-24); the
expRNN's and uRNN's 16 took about 5 core-hours more (1.6 and 3.4, measured 2026-11-29 on a
shared 2-core CPU, the uRNN on adding still at 64 complex units; at copy T = 500 alone 70
minutes), so ``full`` is about 3 hours on 2 cores before the uRNN's adding runs at 512 complex
units: T = 100 took 24 minutes on one core, T = 200 and 400 66 minutes each and T = 750 147
minutes on a shared one (2026-11-30), about 5 core-hours in all.
``paper`` is the unscaled 20,000 iterations x 3 seeds, for a cluster:
``python studies/reproduce_arjovsky2016.py --preset paper --executor dask --scheduler ADDR``.
``quick`` (the slow test): the tanh RNN and the LSTM on the copy task at T = 100, 300 steps.

    python studies/reproduce_arjovsky2016.py --preset quick
    python studies/reproduce_arjovsky2016.py --preset full
"""

from seqmem.cli import main_for_study
from seqmem.sweep import JoinedStudy, Study

COPY = [("copy", {"delay": t}) for t in (100, 200, 300, 500)]
ADDING = [("adding", {"length": t, "variant": "arjovsky2016"}) for t in (100, 200, 400, 750)]
CELLS = ["rnn", "irnn", "orthogonal_rnn", "lstm", "lstm_chrono", "gru", "exprnn", "urnn"]
HIDDEN_SIZE = {
    "copy": {
        "rnn": 80,
        "irnn": 80,
        "orthogonal_rnn": 80,
        "lstm": 40,
        "lstm_chrono": 40,
        "gru": 40,
        "exprnn": 190,
        "urnn": 256,  # 128 complex units
    },
    "adding": {cell: 1024 if cell == "urnn" else 128 for cell in CELLS},  # the uRNN: 512 complex units
}
ORTHOGONAL_LR = {"exprnn": {"orthogonal_lr": 1e-4}}
BASE = {
    "optimizer": "rmsprop",
    "lr": 1e-3,
    "batch_size": 20,
    "grad_clip": 1.0,
    "max_steps": 3000,
    "eval_every": 100,
    "eval_batch_size": 256,
    "stop_when_solved": False,  # equal budgets: the curves run to the end
}


def sizes(task: str, cells: list[str]) -> dict:
    """The paper's hidden size per cell on ``task`` (and the expRNN's rate), as overrides."""
    return {
        "cell": {
            cell: {"hidden_size": HIDDEN_SIZE[task][cell], **ORTHOGONAL_LR.get(cell, {})} for cell in cells
        }
    }


def part(task: str, values: list) -> Study:
    """One task's grid: every cell at every T, one seed (``paper``: 3 and the full budget)."""
    quick = {
        "base": {"max_steps": 300, "eval_every": 50},
        "axes": {"cell": ["rnn", "lstm"], "task": values[:1]},
        "overrides": sizes(task, ["rnn", "lstm"]),
    }
    return Study(
        name=f"arjovsky2016_{task}",
        base=BASE,
        axes={"cell": CELLS, "task": values, "seed": [0]},
        presets={
            **({"quick": quick} if task == "copy" else {}),  # quick: the copy task at T = 100
            "full": {"overrides": sizes(task, CELLS)},
            "paper": {
                "base": {"max_steps": 20_000},
                "axes": {"seed": [0, 1, 2]},
                "overrides": sizes(task, CELLS),
            },
        },
    )


STUDY = JoinedStudy(
    name="reproduce_arjovsky2016",
    literature=("arjovsky2016",),  # the report's paper-vs-seqmem tables
    base={},
    presets={"quick": {}, "full": {}, "paper": {}},
    parts=(part("copy", COPY), part("adding", ADDING)),
)

if __name__ == "__main__":
    raise SystemExit(main_for_study(STUDY))
