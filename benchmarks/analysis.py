"""What the gradient-decay analysis costs next to training on the same batch.

The reference is one plain training pass of the same model on the same sequences: forward
(the fused torch.nn kernel, as training runs it) + the task loss + backward into the weights.
Adding problem, T = 200, hidden 128, float32, for the rnn, lstm and gru presets.  Both sides are
timed in the same run, interleaved (the order alternating between rounds), after a warm-up;
medians of the repeats.  Subnormal floats are flushed to zero during the measurement (both
sides): otherwise the float32 backward of a tanh RNN at initialisation, whose gradient decays
through the subnormal range (1e-38 .. 1e-45), runs 10-40x slower and the reference with it.
One torch thread, as the sweep runs each training process: on this shared 2-core machine
two-thread MKL calls on 128 x 128 matrices stall unpredictably (up to 80x) when another process
holds a core.  Rows:

- ``gradient_norms_by_lag`` (batch 64): ratio = ours / forward+backward, target <= 1.5.
- ``gradient_norms_by_lag vs naive`` (rnn, batch 64): ours / the naive method, one backward
  pass per step t (``autograd.grad(L, h_t)`` T times on one retained graph), target <= 0.05;
  quick mode times every 10th t and scales up (says so in the note).
- ``jacobian_norms_by_lag`` (batch 8, the probe's default): ours / forward+backward of the same
  8 sequences, target <= 10; once as used (spectral + Frobenius norms), once with
  ``spectral=False`` to separate the Jacobian products from the spectral norms.  The probe runs
  it on 8 sequences beside a 64-sequence probe batch, so a third row puts the spectral run next
  to one forward+backward of those 64 (what a probe's gradient pass costs).  Exact products
  cost more flops than a training pass on as many sequences, whatever the code: per sample and
  step the product takes an (S x S) @ (S x H) matmul (S = H; 2H for an LSTM's (h, c)), 2 S^2 H
  flops, where forward+backward takes about 6 G H^2 (G = 1, 4, 3 gate blocks for RNN, LSTM,
  GRU): H / 3 = 43x for the RNN and LSTM and H / 9 = 14x for the GRU at H = 128.
- ``connectivity`` (batch 8, as the probe runs it): ours / forward+backward of the same 8
  sequences, no target (it is opt-in for that reason): ||dy_t'/dx_t|| for every pair t <= t'
  needs one backward per output step t' (batched into one vmapped backward), about T/2 = 100
  training passes' worth of backpropagation on the adding problem's single output.

    python -m benchmarks.analysis [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from benchmarks import medians
from seqmem.analysis import connectivity, gradient_norms_by_lag, jacobian_norms_by_lag
from seqmem.analysis.gradients import reference_loss
from seqmem.model import SequenceModel, make_model
from tasks import AddingTask, Batch

LENGTH, HIDDEN, BATCH, JACOBIAN_BATCH = 200, 128, 64, 8
CELLS = ("rnn", "lstm", "gru")
GRADIENT_TARGET, NAIVE_TARGET, JACOBIAN_TARGET = 1.5, 0.05, 10.0


def _row(
    benchmark: str, case: str, ours: float, reference: float, target: float | None, note: str
) -> dict[str, object]:
    """One result row; ``target`` None: a measurement without a target."""
    ratio = ours / reference
    return {
        "benchmark": benchmark,
        "case": case,
        "ours_s": ours,
        "reference_s": reference,
        "ratio": ratio,
        "target": "—" if target is None else f"<= {target}",
        "meets_target": target is None or ratio <= target,
        "note": note,
    }


def _training_pass(model: SequenceModel, task: AddingTask, batch: Batch) -> Callable[[], None]:
    def forward_backward() -> None:
        task.loss(model(batch.inputs), batch).backward()
        model.zero_grad(set_to_none=True)

    return forward_backward


def _naive(model: SequenceModel, task: AddingTask, batch: Batch, stride: int) -> Callable[[], None]:
    """||dL/dh_t|| by one backward pass per step (every ``stride``-th step)."""

    def per_step_backward() -> None:
        outputs, states = model(batch.inputs, return_states=True)
        loss, _ = reference_loss(outputs, batch, task, "last")
        for h in states.h[::stride]:
            torch.autograd.grad(loss, h, retain_graph=True)[0].norm(dim=-1)

    return per_step_backward


def run(quick: bool = False) -> pd.DataFrame:
    threads, flushing = torch.get_num_threads(), torch.set_flush_denormal(True)
    torch.set_num_threads(1)
    try:
        return _run(quick)
    finally:
        torch.set_num_threads(threads)
        if flushing:
            torch.set_flush_denormal(False)


def _run(quick: bool) -> pd.DataFrame:
    repeats, stride = (2, 10) if quick else (5, 1)
    task = AddingTask(length=LENGTH)
    batch = task.sample(BATCH, torch.Generator().manual_seed(0))
    small = Batch(*(x[:JACOBIAN_BATCH] for x in (batch.inputs, batch.targets, batch.mask, batch.lengths)))
    rows = []
    for cell in CELLS:
        torch.manual_seed(0)
        model = make_model(cell, task, HIDDEN)
        case = f"{cell} B={BATCH} T={LENGTH} H={HIDDEN}"
        functions = {
            "ours": lambda m=model: gradient_norms_by_lag(m, batch, task),
            "training": _training_pass(model, task, batch),
        }
        if cell == "rnn":
            functions["naive"] = _naive(model, task, batch, stride)
        times = medians(functions, repeats if cell != "rnn" or not quick else 1)
        note = f"one backward pass for all t vs one fused forward+backward; median of {repeats}"
        rows.append(
            _row("gradient_norms_by_lag", case, times["ours"], times["training"], GRADIENT_TARGET, note)
        )
        if "naive" in times:
            naive = times["naive"] * stride
            scaled = f" (every {stride}th t timed, x{stride})" if stride > 1 else ""
            note = (
                f"one backward pass vs {LENGTH} backward passes{scaled}; "
                f"naive = {naive / times['training']:.0f}x fwd+bwd"
            )
            rows.append(
                _row("gradient_norms_by_lag vs naive", case, times["ours"], naive, NAIVE_TARGET, note)
            )
        case = f"{cell} B={JACOBIAN_BATCH} T={LENGTH} H={HIDDEN}"
        times = medians(
            {
                "spectral": lambda m=model: jacobian_norms_by_lag(m, small, task),
                "products": lambda m=model: jacobian_norms_by_lag(m, small, task, spectral=False),
                "connectivity": lambda m=model: connectivity(m, small, task),
                "training": _training_pass(model, task, small),
                "training_probe": _training_pass(model, task, batch),
            },
            repeats,
        )
        for name, what, reference, size in (
            ("spectral", "spectral + Frobenius norms", "training", JACOBIAN_BATCH),
            ("products", "spectral=False", "training", JACOBIAN_BATCH),
            ("spectral", "spectral + Frobenius norms", "training_probe", BATCH),
        ):
            note = f"{what}, closed-form step Jacobians; vs fwd+bwd of {size} sequences"
            rows.append(
                _row(
                    f"jacobian_norms_by_lag ({what}) vs B={size}",
                    case,
                    times[name],
                    times[reference],
                    JACOBIAN_TARGET,
                    note,
                )
            )
        note = (
            f"every output step t' x input step t <= t', one vmapped backward; vs fwd+bwd of {JACOBIAN_BATCH}"
        )
        rows.append(_row("connectivity vs B=8", case, times["connectivity"], times["training"], None, note))
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats; naive method on every 10th step")
    parser.add_argument("--json", type=Path, default=None, help="also save the table as JSON here")
    args = parser.parse_args()
    table = run(quick=args.quick)
    with pd.option_context("display.width", 250, "display.max_colwidth", 120):
        print(table.to_string(index=False))
    if args.json is not None:
        table.to_json(args.json, orient="records", indent=2)


if __name__ == "__main__":
    main()
