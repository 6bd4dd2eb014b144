"""The headline measurement: how much gradient survives 200 steps at initialisation.

For each cell preset at initialisation on the adding problem (Arjovsky et al. 2016 variant,
T = 200, hidden 128) and several seeds: ||dL/dh_t|| by lag from the answer at the last step
(``gradient_norms_by_lag``, measured in float64 so the tanh RNN's decay is not cut off by
float32 underflow), then per cell the ratio ||dL/dh_0|| / ||dL/dh_{T-1}|| (lag T - 1 = 199,
the oldest state the answer depends on), the fitted per-step decay factor and the memory
horizon (``fit_decay``), means over seeds with 95% t-intervals.  For LSTMs the cell-state path
||dL/dc_t|| gets its own row; tanh/ReLU RNNs get the Pascanu et al. (2013) per-step bound.

    python -m seqmem.analysis.headline [--seeds 5] [--length 200] [--hidden-size 128]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from seqmem.analysis.fits import fit_decay, rnn_gradient_bound
from seqmem.analysis.gradients import gradient_norms_by_lag
from seqmem.model import SequenceModel, make_model
from tasks import AddingTask
from tasks.base import check_int

__all__ = ["CELLS", "headline"]

CELLS = ("rnn", "lstm", "gru", "irnn", "orthogonal_rnn")
PATHS = {"grad_norm": "h", "cell_grad_norm": "c"}


def headline(
    cells: Sequence[str] = CELLS,
    seeds: int = 5,
    length: int = 200,
    hidden_size: int = 128,
    batch_size: int = 64,
) -> pd.DataFrame:
    """One row per cell and gradient path (h; c for LSTMs): n_seeds, ratio (geometric mean over
    seeds of the lag-(T-1) / lag-0 norm ratio) and log10_ratio, decay_factor, memory_horizon
    (each with _ci_low/_ci_high), horizon_extrapolated, gradient_bound (NaN for gated cells)."""
    check_int("seeds", seeds, 1)
    check_int("batch_size", batch_size, 1)
    task = AddingTask(length=length)
    curves, bounds = [], {}
    for cell in cells:
        for seed in range(seeds):
            torch.manual_seed(seed)
            model = make_model(cell, task, hidden_size)
            batch = task.sample(batch_size, torch.Generator().manual_seed(seed))
            curves.append(
                gradient_norms_by_lag(model, batch, task, dtype=torch.float64).assign(cell=cell, seed=seed)
            )
            if model.cell.gradient_bound() is not None:
                bounds.setdefault(cell, []).append(_bound(model))
    curves = pd.concat(curves, ignore_index=True)
    measured = set(curves["quantity"])
    fits = pd.concat(
        [
            fit_decay(curves, quantity, by=["cell"], replicate="seed").assign(path=path)
            for quantity, path in PATHS.items()
            if quantity in measured
        ],
        ignore_index=True,
    )
    order = {
        **{cell: k for k, cell in enumerate(cells)},
        **{path: k for k, path in enumerate(PATHS.values())},
    }
    fits = fits.sort_values(["cell", "path"], key=lambda column: column.map(order))
    return fits.assign(
        ratio=10.0 ** fits["log10_ratio"],
        gradient_bound=[np.mean(bounds[c]) if c in bounds else np.nan for c in fits["cell"]],
    ).reset_index(drop=True)


def _bound(model: SequenceModel) -> float:
    rows = rnn_gradient_bound(model)
    return float(rows.loc[rows["quantity"] == "gradient_bound", "value"].iloc[0])


def _interval(frame: pd.DataFrame, metric: str, digits: str) -> pd.Series:
    return frame.apply(
        lambda r: (
            f"{r[metric]:{digits}} [{r[f'{metric}_ci_low']:{digits}}, {r[f'{metric}_ci_high']:{digits}}]"
        ),
        axis=1,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    fits = headline(CELLS, args.seeds, args.length, args.hidden_size, args.batch_size)
    table = pd.DataFrame(
        {
            "cell": fits["cell"],
            "path": fits["path"].map({"h": "dL/dh_t", "c": "dL/dc_t"}),
            "seeds": fits["n_seeds"],
            f"norm(lag {args.length - 1}) / norm(lag 0)": fits["ratio"].map("{:.2e}".format),
            "log10 ratio [95% CI]": _interval(fits, "log10_ratio", ".1f"),
            "decay/step [95% CI]": _interval(fits, "decay_factor", ".3f"),
            "horizon (1e-6) [95% CI]": _interval(fits, "memory_horizon", ".0f")
            + np.where(fits["horizon_extrapolated"], " (extrapolated)", ""),
            "Pascanu bound/step": fits["gradient_bound"].map(lambda b: "" if np.isnan(b) else f"{b:.3f}"),
        }
    )
    print(
        f"Gradient decay at initialisation: adding problem (arjovsky2016) T={args.length}, "
        f"hidden {args.hidden_size}, batch {args.batch_size}, float64; mean over seeds, 95% t-intervals."
    )
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
