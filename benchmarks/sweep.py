"""Sweep scaling: parallel speed-up of 2 local workers over 1, and the sweep's cost per run.

The same 8 short runs (adding problem, LSTM, one seed each) are timed three ways, round-robin
(order alternating between rounds) after a warm-up, and the medians compared:

- bare:      train() called on each config in a loop, one torch thread (what the sweep gives
             every run), nothing written;
- 1 worker:  run_study(workers=1): in-process, plus grid validation, the results store (parquet,
             checkpoint, JSON, each written atomically), resume checks and the summary;
- 2 workers: run_study(workers=2): a local process pool.

Rows: ``parallel_speedup`` (ours_s = 2 workers, reference_s = 1 worker, ratio = reference_s /
ours_s = the speed-up, target >= 1.7) and ``sweep_overhead`` (per run: ours_s = 1-worker sweep,
reference_s = bare train(), ratio = ours_s / reference_s, target <= 1.05, i.e. <= 5% overhead).
The warm-up pays the one-off start of the worker pool's fork server (it imports torch and
seqmem once per Python process); its cost is reported in the note, not in the medians.
The speed-up needs two idle cores: on Linux, busy processes of other sessions (autogroup
scheduling) shrink the CPU share of the whole sweep, however many workers it has, so the note
records the load average.

    python -m benchmarks.sweep [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import tempfile
from pathlib import Path

import pandas as pd
import torch

from benchmarks import timings
from seqmem.sweep import Study, run_study
from seqmem.train import train

RUNS = 8


def make_study(quick: bool) -> Study:
    return Study(
        name="bench_sweep",
        base={
            "task": "adding",
            "task_params.length": 50,
            "cell": "lstm",
            "hidden_size": 32,
            "batch_size": 32,
            "max_steps": 60 if quick else 200,
            "eval_every": 50,
            "eval_batch_size": 128,
        },
        axes={"seed": list(range(RUNS))},
    )


def sweep(study: Study, workers: int) -> None:
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
        run_study(study, preset=None, out=out, workers=workers, progress=False)


def bare(study: Study) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for run in study.grid(None):
            train(run.train, progress=False)
    finally:
        torch.set_num_threads(threads)


def run(quick: bool = False) -> pd.DataFrame:
    """Quick: runs of 60 steps, 2 rounds (about half a minute on 2 idle cores); else 200 steps, 5."""
    study = make_study(quick)
    repeats = 2 if quick else 5
    fns = {"bare": lambda: bare(study), "w1": lambda: sweep(study, 1), "w2": lambda: sweep(study, 2)}
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    warm, times = timings(fns, repeats)
    t = {name: statistics.median(ts) for name, ts in times.items()}
    steps = study.base["max_steps"]
    common = (
        f"{RUNS} runs of adding T=50 lstm H=32, {steps} steps; median of {repeats} rounds; "
        f"per-run bare train() {t['bare'] / RUNS:.2f} s; load average {load_before:.1f} on "
        f"{os.cpu_count()} cores at the start (the speed-up needs 2 idle cores)"
    )
    speedup = t["w1"] / t["w2"]
    overhead_ms = (t["w1"] - t["bare"]) / RUNS * 1e3
    return pd.DataFrame(
        [
            {
                "benchmark": "parallel_speedup",
                "case": f"{RUNS} runs, 2 local workers vs 1",
                "ours_s": t["w2"],
                "reference_s": t["w1"],
                "ratio": speedup,
                "target": ">= 1.7x",
                "meets_target": speedup >= 1.7,
                "note": f"ratio = reference_s / ours_s (speed-up); {common}; one-off pool start in the "
                f"warm-up: {max(warm['w2'] - t['w2'], 0.0):.1f} s",
            },
            {
                "benchmark": "sweep_overhead",
                "case": f"{RUNS} runs, run_study(workers=1) vs bare train() loop, per run",
                "ours_s": t["w1"] / RUNS,
                "reference_s": t["bare"] / RUNS,
                "ratio": t["w1"] / t["bare"],
                "target": "<= 1.05",
                "meets_target": t["w1"] <= 1.05 * t["bare"],
                "note": f"ratio - 1 = overhead per run ({overhead_ms:.0f} ms); {common}",
            },
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer rounds")
    parser.add_argument("--json", type=Path, default=None, help="also save the table as JSON here")
    args = parser.parse_args(argv)
    table = run(quick=args.quick)
    with pd.option_context("display.max_colwidth", None, "display.width", 200):
        print(table.to_string(index=False))
    if args.json is not None:
        table.to_json(args.json, orient="records", indent=2)


if __name__ == "__main__":
    main()
