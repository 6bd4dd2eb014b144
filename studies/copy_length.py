"""Success vs difficulty on the copy task: which cells still recall after a delay of T steps?

Arjovsky, Shah & Bengio (2016) report that the tanh RNN and the LSTM stay at the memoryless
baseline 10·ln 8 / (T + 20) on the copy task for long delays; the remedies (orthogonal and
identity recurrent weights, chrono initialisation, and recurrent matrices that stay orthogonal or
unitary while training: expRNN, uRNN) were proposed to fix exactly that.  This study sweeps the
delay per cell and reports the solve rate and final loss / baseline.

``full`` reaches delay 500, with fewer steps at the long delays (the cells that do not solve a
delay spend their whole budget on it).  Its time, from training-step times measured on a 2-core
CPU (2026-11-29): up to 5.3 core-hours for the six cells that do not stay orthogonal, about 0.8
for the expRNN and uRNN (which stop once solved): about 3 hours on 2 cores.  Delay 1000 would add
about 1.9 hours, so it is left out.  The expRNN's
skew-symmetric parameter trains at a tenth of the learning rate (Lezcano-Casado & Martinez-Rubio
2019); the uRNN has hidden_size / 2 complex units.

    seqmem run studies/copy_length.py --preset quick
    python studies/copy_length.py --preset full
"""

from seqmem.cli import main_for_study
from seqmem.config import ProbeConfig
from seqmem.sweep import Study

# Adam, batch 32, gradient clipping at norm 1, hidden 128: TrainConfig's defaults.
STUDY = Study(
    name="copy_length",
    base={
        "task": "copy",
        "lr": 3e-3,
        "max_steps": 6000,
        "eval_every": 200,
    },
    axes={
        "cell": ["rnn", "irnn", "orthogonal_rnn", "lstm", "lstm_chrono", "gru", "exprnn", "urnn"],
        "task_params.delay": [10, 20, 50, 100, 200, 500],
        "seed": [0, 1],
    },
    presets={
        "quick": {
            "base": {"hidden_size": 64, "lr": 1e-2, "max_steps": 1000, "eval_every": 100},
            "axes": {
                "cell": ["rnn", "lstm", "gru", "exprnn", "urnn"],
                "task_params.delay": [5, 10, 20],
                "seed": [0],
            },
            "overrides": {"cell": {"exprnn": {"orthogonal_lr": 1e-3}}},
        },
        "full": {
            "overrides": {
                "cell": {"exprnn": {"orthogonal_lr": 3e-4}},
                "task_params.delay": {200: {"max_steps": 3000}, 500: {"max_steps": 1500}},
            }
        },
    },
    # the decay at init and at the end, for the memory-horizon figure; cheap enough for every run
    probe=ProbeConfig(quantities=("grad_norm", "gradient_bound"), every_n_evals=0),
)

if __name__ == "__main__":
    raise SystemExit(main_for_study(STUDY))
