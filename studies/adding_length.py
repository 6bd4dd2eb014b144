"""Success vs difficulty on the adding problem: up to which sequence length does each cell
learn to add the two marked numbers?

The adding problem (Hochreiter & Schmidhuber 1997; here the Arjovsky et al. 2016 variant, MSE
baseline 1/6) needs one memory held across the whole sequence.  The tanh RNN fails beyond a
few dozen steps (Bengio et al. 1994); gated cells and the RNN remedies go much further.

    seqmem run studies/adding_length.py --preset quick
    python studies/adding_length.py --preset full
"""

from seqmem.cli import main_for_study
from seqmem.config import ProbeConfig
from seqmem.sweep import Study

# Adam, batch 32, gradient clipping at norm 1, hidden 128: TrainConfig's defaults.
STUDY = Study(
    name="adding_length",
    base={
        "task": "adding",
        "lr": 3e-3,
        "max_steps": 6000,
        "eval_every": 200,
    },
    axes={
        "cell": ["rnn", "irnn", "orthogonal_rnn", "lstm", "lstm_chrono", "gru"],
        "task_params.length": [25, 50, 100, 200],
        "seed": [0, 1],
    },
    presets={
        "quick": {
            "base": {"hidden_size": 64, "lr": 1e-2, "max_steps": 1500, "eval_every": 100},
            "axes": {"cell": ["rnn", "lstm", "gru"], "task_params.length": [25, 50, 100], "seed": [0]},
        },
        "full": {},
    },
    probe=ProbeConfig(quantities=("grad_norm", "gradient_bound"), every_n_evals=0),
)

if __name__ == "__main__":
    raise SystemExit(main_for_study(STUDY))
