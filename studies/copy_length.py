"""Success vs difficulty on the copy task: which cells still recall after a delay of T steps?

Arjovsky, Shah & Bengio (2016) report that the tanh RNN and the LSTM stay at the memoryless
baseline 10·ln 8 / (T + 20) on the copy task for long delays; the remedies (orthogonal and
identity recurrent weights, chrono initialisation) were proposed to fix exactly that.  This
study sweeps the delay per cell and reports the solve rate and final loss / baseline.

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
        "cell": ["rnn", "irnn", "orthogonal_rnn", "lstm", "lstm_chrono", "gru"],
        "task_params.delay": [10, 20, 50, 100],
        "seed": [0, 1],
    },
    presets={
        "quick": {
            "base": {"hidden_size": 64, "lr": 1e-2, "max_steps": 1000, "eval_every": 100},
            "axes": {"cell": ["rnn", "lstm", "gru"], "task_params.delay": [5, 10, 20], "seed": [0]},
        },
        "full": {},
    },
    # the decay at init and at the end, for the memory-horizon figure; cheap enough for every run
    probe=ProbeConfig(quantities=("grad_norm", "gradient_bound"), every_n_evals=0),
)

if __name__ == "__main__":
    raise SystemExit(main_for_study(STUDY))
