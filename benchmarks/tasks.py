"""Task sampling must cost far less than training on the batch.

For every task at about 1000 steps: the time of ``task.sample(128)`` over the
time of one forward + backward pass of ``torch.nn.LSTM(hidden_size=128)``
(plus a linear readout and the task's loss) on that very batch.  Both sides
are timed in the same run, interleaved, after a warm-up; medians of repeats.

    python -m benchmarks.tasks [--quick]
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from benchmarks import medians
from tasks import (
    AddingTask,
    AssociativeRecallTask,
    CopyTask,
    MultiplicationTask,
    SelectiveCopyTask,
    Task,
    TemporalOrderTask,
)

BATCH_SIZE = 128
HIDDEN_SIZE = 128
TARGET = 0.05

# each about 1000 steps long (variable-length tasks: at most ~1000)
CASES: tuple[Task, ...] = (
    CopyTask(delay=980),
    AddingTask(length=1000),
    AddingTask(length=910, variant="hochreiter1997"),
    MultiplicationTask(length=910),
    TemporalOrderTask(length=910, n_markers=3),
    SelectiveCopyTask(length=984),
    AssociativeRecallTask(n_pairs=333, n_keys=333, n_values=32, n_queries=333),
)
QUICK_CASES = CASES[:2]


def measure(task: Task, repeats: int) -> dict[str, object]:
    generator = torch.Generator().manual_seed(0)
    batch = task.sample(BATCH_SIZE, generator)
    lstm = torch.nn.LSTM(task.input_size, HIDDEN_SIZE, batch_first=True)
    readout = torch.nn.Linear(HIDDEN_SIZE, task.output_size)

    def train_pass() -> None:
        outputs = readout(lstm(batch.inputs)[0])
        task.loss(outputs, batch).backward()

    def sample() -> None:
        task.sample(BATCH_SIZE, generator)

    times = medians({"ours": sample, "reference": train_pass}, repeats)
    ours_s, reference_s = times["ours"], times["reference"]
    return {
        "benchmark": "task_sampling",
        "case": str(task),
        "ours_s": ours_s,
        "reference_s": reference_s,
        "ratio": ours_s / reference_s,
        "target": f"<= {TARGET}",
        "meets_target": ours_s / reference_s <= TARGET,
        "note": (
            f"sample({BATCH_SIZE}) vs nn.LSTM(hidden {HIDDEN_SIZE}) forward+backward on the same batch "
            f"(B={BATCH_SIZE}, L={batch.seq_len}, I={task.input_size}); median of {repeats}"
        ),
    }


def run(quick: bool = False) -> pd.DataFrame:
    cases, repeats = (QUICK_CASES, 2) if quick else (CASES, 3)
    return pd.DataFrame([measure(task, repeats) for task in cases])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two tasks, fewer repeats")
    args = parser.parse_args()
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(run(quick=args.quick).drop(columns="note").to_string(index=False))


if __name__ == "__main__":
    main()
