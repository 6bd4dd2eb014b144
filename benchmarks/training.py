"""Training-step throughput of SequenceModel vs a bare torch.nn loop, and achieved FLOP/s.

One training step = forward + task loss + backward + Adam step, on a copy-task batch
(input 10, output 9) of each (batch, length, hidden) size, for the lstm, gru and rnn presets.
Per case, four things are timed round-robin in the same run (the order alternates between
rounds), after a warm-up, and the medians compared:

- ours:      ``SequenceModel`` as training uses it (the fused path where it applies: torch.nn's
             kernel for the LSTM and GRU, seqmem's hand-written BPTT for the RNN);
- reference: a bare hand-written step over ``torch.nn.LSTM/GRU/RNN`` + ``torch.nn.Linear``;
- unrolled:  ``SequenceModel`` forced through its per-step unroll loop (full mode only), to
             show the fused path is used only where it is faster;
- matmul:    a 2048 x 2048 float32 matmul, this machine's attainable FLOP/s at that moment.

Rows: ``training_step`` (ours / reference step time, target <= 1.0, i.e. >= 1.0x the
reference's throughput), ``fused_vs_unrolled`` (fused / unrolled step time), ``constrained_step``
(the expRNN's and the uRNN's ``SequenceModel`` step over the tanh RNN's, all three by hand-written
BPTT since torch has no kernel for them; targets 1.5 and 3), ``urnn_factored_vs_unrolled`` (full
mode only: at the paper's adding size, 512 complex units, the uRNN's factored fast path over its
per-step unroll of ``recur``), ``lstm1997_compiled_vs_unrolled`` (an online step of the 1997 LSTM
as experiment 4 trains it, one sequence: its compiled truncated-gradient path over the model's
autograd unroll of ``recur``) and ``flop_rate``
(ours_s = the step time, reference_s = the time the same FLOPs take at the measured matmul rate,
ratio = the fraction of the matmul rate achieved).  ``ours_s``/``reference_s`` are medians; the
ratio is the median of per-round ratios (both sides ran back to back), which cancels the slow
load swings of a shared machine far better than a ratio of medians.
FLOPs count the matmuls only: per token 2 (G H (I + H) + H O) forward, times 3 for training.

    python -m benchmarks.training [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
import torch

from benchmarks import timings
from seqmem.model import make_model
from tasks import AddingTask, CopyTask, Task

SIZES = ((64, 100, 128), (128, 200, 256), (32, 1000, 64))  # (batch, length, hidden)
TORCH_NN = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
# what SequenceModel's fused path runs on the CPU, next to the bare torch.nn loop
KERNEL = {
    "lstm": "same kernel: parity",
    "gru": "same kernel: parity",
    "rnn": "seqmem's hand-written BPTT",
}
# cells whose recurrent matrix stays orthogonal / unitary: step time over the tanh RNN's, at most
CONSTRAINED = {"exprnn": 1.5, "urnn": 3.0}
CONSTRAINED_SIZES = ((64, 100, 128), (32, 1000, 64))
URNN_FACTORED_SIZE = (20, 100, 1024)  # Arjovsky et al.'s adding: batch 20, 512 complex units
# Hochreiter & Schmidhuber's experiment 4 net: 2 blocks of 2 cells, one sequence per update
LSTM1997_NET = {"block_size": 2, "input_gate_bias": (-3.0, -6.0)}
FLOP_TARGET_SIZE, FLOP_TARGET = (128, 200, 256), 0.5
MATMUL_N = 2048
COLUMNS = ["benchmark", "case", "ours_s", "reference_s", "ratio", "target", "meets_target", "note"]


def paired(numerator: list[float], denominator: list[float]) -> float:
    """Median of per-round ratios: both sides of a round ran back to back, so load drift cancels."""
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))


def training_step(parameters: Iterable[torch.nn.Parameter], forward: Callable, task: Task, batch) -> Callable:
    optimizer = torch.optim.Adam(parameters, lr=1e-3)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        task.loss(forward(batch.inputs), batch).backward()
        optimizer.step()

    return step


def step_functions(cell: str, task: Task, batch, hidden: int, unrolled: bool) -> dict[str, Callable]:
    torch.manual_seed(0)
    model = make_model(cell, task, hidden)
    rnn = TORCH_NN[cell](task.input_size, hidden, batch_first=True)
    readout = torch.nn.Linear(hidden, task.output_size)
    a, b = torch.randn(MATMUL_N, MATMUL_N), torch.randn(MATMUL_N, MATMUL_N)
    fns = {
        "ours": training_step(model.parameters(), model, task, batch),
        "reference": training_step(
            [*rnn.parameters(), *readout.parameters()], lambda x: readout(rnn(x)[0]), task, batch
        ),
        "matmul": lambda: torch.mm(a, b),
    }
    if unrolled:
        slow = make_model(cell, task, hidden)
        slow.fused = False
        fns["unrolled"] = training_step(slow.parameters(), slow, task, batch)
    return fns


def training_flops(cell: str, batch: int, length: int, hidden: int, task: Task) -> float:
    per_token = 2 * (GATES[cell] * hidden * (task.input_size + hidden) + hidden * task.output_size)
    return 3.0 * per_token * batch * length


def measure(cell: str, size: tuple[int, int, int], repeats: int, unrolled: bool) -> list[dict[str, object]]:
    batch_size, length, hidden = size
    task = CopyTask(delay=length - 20)  # length = delay + 2 * n_copy
    batch = task.sample(batch_size, torch.Generator().manual_seed(0))
    t = timings(step_functions(cell, task, batch, hidden, unrolled), repeats)[1]
    med = {name: statistics.median(ts) for name, ts in t.items()}
    # seconds the step's FLOPs take at the matmul rate of each round
    at_rate = [
        training_flops(cell, batch_size, length, hidden, task) * s / (2 * MATMUL_N**3) for s in t["matmul"]
    ]
    case = f"{cell} B={batch_size} L={length} H={hidden}"
    common = (
        f"ratio = median of {repeats} paired rounds; {torch.get_num_threads()} threads; "
        f"matmul {2 * MATMUL_N**3 / med['matmul'] / 1e9:.0f} GFLOP/s"
    )
    fraction, reference_fraction = paired(at_rate, t["ours"]), paired(at_rate, t["reference"])
    has_target = size == FLOP_TARGET_SIZE
    rows = [
        {
            "benchmark": "training_step",
            "case": case,
            "ours_s": med["ours"],
            "reference_s": med["reference"],
            "ratio": paired(t["ours"], t["reference"]),
            "target": "<= 1.0",
            "note": f"vs bare torch.nn.{TORCH_NN[cell].__name__} + Linear ({KERNEL[cell]}); {common}",
        },
        {
            "benchmark": "flop_rate",
            "case": case,
            "ours_s": med["ours"],
            "reference_s": statistics.median(at_rate),
            "ratio": fraction,
            "target": f">= {FLOP_TARGET}" if has_target else "none",
            "meets_target": fraction >= FLOP_TARGET if has_target else True,
            "note": f"fraction of matmul rate; bare torch.nn: {reference_fraction:.2f}; {common}",
        },
    ]
    if unrolled:
        rows.append(
            {
                "benchmark": "fused_vs_unrolled",
                "case": case,
                "ours_s": med["ours"],
                "reference_s": med["unrolled"],
                "ratio": paired(t["ours"], t["unrolled"]),
                "target": "<= 1.0",
                "note": f"SequenceModel fused path vs its own unroll loop; {common}",
            }
        )
    for row in rows:
        row.setdefault("meets_target", row["ratio"] <= 1.0)
    return rows


def measure_constrained(size: tuple[int, int, int], repeats: int) -> list[dict[str, object]]:
    """The expRNN's and uRNN's training step over the tanh RNN's, all ``SequenceModel``s, paired."""
    batch_size, length, hidden = size
    task = CopyTask(delay=length - 20)
    batch = task.sample(batch_size, torch.Generator().manual_seed(0))
    fns = {}
    for cell in ("rnn", *CONSTRAINED):
        torch.manual_seed(0)
        model = make_model(cell, task, hidden)
        fns[cell] = training_step(model.parameters(), model, task, batch)
    t = timings(fns, repeats)[1]
    rows = []
    for cell, target in CONSTRAINED.items():
        ratio = paired(t[cell], t["rnn"])
        rows.append(
            {
                "benchmark": "constrained_step",
                "case": f"{cell} B={batch_size} L={length} H={hidden}",
                "ours_s": statistics.median(t[cell]),
                "reference_s": statistics.median(t["rnn"]),
                "ratio": ratio,
                "target": f"<= {target}",
                "meets_target": ratio <= target,
                "note": f"vs the tanh RNN's SequenceModel step; ratio = median of {repeats} paired rounds; "
                f"{torch.get_num_threads()} threads",
            }
        )
    return rows


def fast_path_vs_unroll(
    benchmark: str, cell: str, task: Task, batch, hidden: int, repeats: int, what: str, **model_kwargs
) -> dict[str, object]:
    """A ``SequenceModel`` training step through ``cell``'s fast path against the same model
    forced through its per-step unroll of ``recur`` (``fused=False``), paired."""
    fns = {}
    for name, fused in (("fast", True), ("unrolled", False)):
        torch.manual_seed(0)
        model = make_model(cell, task, hidden, **model_kwargs)
        model.fused = fused
        fns[name] = training_step(model.parameters(), model, task, batch)
    t = timings(fns, repeats)[1]
    ratio = paired(t["fast"], t["unrolled"])
    batch_size, length = batch.inputs.shape[:2]
    return {
        "benchmark": benchmark,
        "case": f"{cell} B={batch_size} L={length} H={hidden}",
        "ours_s": statistics.median(t["fast"]),
        "reference_s": statistics.median(t["unrolled"]),
        "ratio": ratio,
        "target": "<= 1.0",
        "meets_target": ratio <= 1.0,
        "note": f"{what} vs its own unroll loop; ratio = median of {repeats} paired rounds; "
        f"{torch.get_num_threads()} threads",
    }


def measure_urnn_factored(size: tuple[int, int, int], repeats: int) -> dict[str, object]:
    """The uRNN above ``DENSE_MAX_UNITS``: its fast path (the factors in the complex domain, built
    once per batch) against the model's unroll of ``recur``."""
    batch_size, length, hidden = size
    task = CopyTask(delay=length - 20)
    batch = task.sample(batch_size, torch.Generator().manual_seed(0))
    what = "the uRNN's fast path"
    return fast_path_vs_unroll("urnn_factored_vs_unrolled", "urnn", task, batch, hidden, repeats, what)


def measure_lstm1997_online(length: int, repeats: int) -> dict[str, object]:
    """One online step of the 1997 LSTM (batch 1, experiment 4's net and task): its compiled
    truncated-gradient path against the model's autograd unroll of ``recur``."""
    task = AddingTask(length=length, variant="hochreiter1997")
    batch = task.sample(1, torch.Generator().manual_seed(0))
    what = "an online step (one sequence) through the compiled truncated gradient"
    return fast_path_vs_unroll(
        "lstm1997_compiled_vs_unrolled",
        "lstm1997",
        task,
        batch,
        4,
        repeats,
        what,
        cell_params=LSTM1997_NET,
        logistic_output=True,
    )


def run(quick: bool = False) -> pd.DataFrame:
    """Quick: 3 repeats; of the unroll-loop comparisons only the 1997 LSTM's online step (about a
    second), so well under a minute on 2 idle cores."""
    repeats = 3 if quick else 7
    torch.set_flush_denormal(True)  # both sides run as train() runs them: subnormals flushed
    rows = [row for cell in TORCH_NN for size in SIZES for row in measure(cell, size, repeats, not quick)]
    rows += [row for size in CONSTRAINED_SIZES for row in measure_constrained(size, repeats)]
    if not quick:
        rows.append(measure_urnn_factored(URNN_FACTORED_SIZE, repeats))
    rows.append(measure_lstm1997_online(100, repeats))
    return pd.DataFrame(rows, columns=COLUMNS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no unroll-loop comparison")
    parser.add_argument("--json", type=Path, default=Path("results/benchmarks/training.json"))
    args = parser.parse_args()
    table = run(quick=args.quick)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    table.to_json(args.json, orient="records", indent=2)
    with pd.option_context("display.width", 200, "display.max_colwidth", 80):
        print(table.drop(columns="note").to_string(index=False))
    print(f"saved {args.json}")


if __name__ == "__main__":
    main()
