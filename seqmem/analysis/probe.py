"""The training callback that records the analysis as a study runs, in the long probe-row format.

``make_probe(ProbeConfig(...))`` returns ``callback(ctx) -> DataFrame | None`` for
``seqmem.train.train``: at initialisation, every ``every_n_evals``-th evaluation and at the end
it measures the model on a fixed prefix of the held-out batch (so probes are deterministic and
comparable across steps) and returns rows with the columns of ``PROBE_COLUMNS``:

    step, sequences_seen, phase, quantity, t, lag, stat, value

quantities: grad_norm, cell_grad_norm, input_saliency (t, lag from the reference step);
jacobian_spectral, jacobian_frobenius, cell_jacobian_spectral, cell_jacobian_frobenius,
forget_product (t, lag from the last step); gate_i, gate_f, gate_o, gate_r, gate_z (per step t,
lag = last step - t; stats also 'saturated'); lyapunov (t = exponent index, lag = -1);
gradient_bound (RNN cells, t = lag = -1, stat 'mean').  stats: mean, median, q10, q90.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from seqmem.analysis.common import STATS, as_dtype, batch_as_dtype, lag_frame, stat_column
from seqmem.analysis.fits import rnn_gradient_bound
from seqmem.analysis.gates import gate_statistics
from seqmem.analysis.gradients import REFERENCES, lag_gradient_norms
from seqmem.analysis.jacobians import forget_product, jacobian_norms_by_lag, lyapunov_spectrum
from tasks.base import Batch, check_choice, check_int

if TYPE_CHECKING:  # train runs the probes, so analysis does not import it at run time
    from seqmem.train import ProbeContext

__all__ = ["PROBE_COLUMNS", "PROBE_QUANTITIES", "ProbeConfig", "make_probe", "to_probe_rows"]

PROBE_COLUMNS = ["step", "sequences_seen", "phase", "quantity", "t", "lag", "stat", "value"]
# what a ProbeConfig can ask for; 'jacobian' is the family of Jacobian-product norms
PROBE_QUANTITIES = (
    "grad_norm",
    "input_saliency",
    "jacobian",
    "forget_product",
    "gates",
    "lyapunov",
    "gradient_bound",
)
JACOBIAN_QUANTITIES = (
    "jacobian_spectral",
    "jacobian_frobenius",
    "cell_jacobian_spectral",
    "cell_jacobian_frobenius",
)
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class ProbeConfig:
    """What the probe records, when, and on how much data.

    quantities           a subset of PROBE_QUANTITIES ('grad_norm' includes cell_grad_norm)
    every_n_evals        probe every n-th evaluation during training (0: only at 'init' and
                         'final', which are always probed)
    batch_size           sequences of the held-out batch (its first ones) for gradients and gates
    jacobian_batch_size  sequences for the Jacobian products and the Lyapunov spectrum (costly)
    lyapunov_k           leading exponents to compute (capped at the state size)
    reference            'last' (the task's reference step) or 'all' (the full loss)
    dtype                'float64' (default: follows the decay far past float32's underflow) or
                         'float32' (what training sees)
    """

    quantities: tuple[str, ...] = PROBE_QUANTITIES
    every_n_evals: int = 1
    batch_size: int = 64
    jacobian_batch_size: int = 8
    lyapunov_k: int = 16
    reference: str = "last"
    dtype: str = "float64"

    def __post_init__(self) -> None:
        if (
            isinstance(self.quantities, str)
            or not isinstance(self.quantities, tuple | list)
            or not self.quantities
        ):
            raise ValueError(
                f"quantities={self.quantities!r} is invalid: must be a non-empty tuple of {PROBE_QUANTITIES}"
            )
        for name in self.quantities:
            check_choice("quantities", name, PROBE_QUANTITIES)
        object.__setattr__(self, "quantities", tuple(self.quantities))
        check_int("every_n_evals", self.every_n_evals, 0)
        check_int("batch_size", self.batch_size, 1)
        check_int("jacobian_batch_size", self.jacobian_batch_size, 1)
        check_int("lyapunov_k", self.lyapunov_k, 1)
        check_choice("reference", self.reference, REFERENCES)
        check_choice("dtype", self.dtype, tuple(DTYPES))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe and canonical (lists, not tuples)."""
        return dataclasses.asdict(self) | {"quantities": list(self.quantities)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeConfig:
        fields = [f.name for f in dataclasses.fields(cls)]
        for name in data:
            if name not in fields:
                raise ValueError(
                    f"{name}={data[name]!r} is invalid: not a ProbeConfig field ({', '.join(fields)})"
                )
        return cls(**{k: tuple(v) if k == "quantities" else v for k, v in data.items()})


def to_probe_rows(
    frame: pd.DataFrame, quantities: tuple[str, ...], stats: tuple[str, ...] = STATS
) -> pd.DataFrame:
    """Long rows (quantity, t, lag, stat, value) from a wide lag frame: quantity ``q`` at stat
    ``s`` is the column ``stat_column(q, s)``; quantities missing from the frame are skipped."""
    parts = [
        pd.DataFrame(
            {
                "quantity": name,
                "t": frame["t"],
                "lag": frame["lag"],
                "stat": stat,
                "value": frame[stat_column(name, stat)],
            }
        )
        for name in quantities
        if name in frame.columns
        for stat in stats
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=PROBE_COLUMNS[3:])


def _prefix(batch: Batch, size: int) -> Batch:
    return Batch(batch.inputs[:size], batch.targets[:size], batch.mask[:size], batch.lengths[:size])


def _due(config: ProbeConfig, ctx: ProbeContext) -> bool:
    if ctx.phase != "train":
        return True
    return config.every_n_evals > 0 and (ctx.step // ctx.config.eval_every) % config.every_n_evals == 0


def _measure(config: ProbeConfig, ctx: ProbeContext) -> list[pd.DataFrame]:
    wanted = set(config.quantities)
    dtype = DTYPES[config.dtype]
    model = as_dtype(ctx.model, dtype)  # one copy for every measurement of this probe
    batch = batch_as_dtype(_prefix(ctx.eval_batch, config.batch_size), dtype)
    # Jacobians, forget gates and gates are measured up to the last step every sequence has.
    common = int(batch.lengths.min())
    inputs = batch.inputs[:, :common]
    small = inputs[: config.jacobian_batch_size]
    parts = []
    if wanted & {"grad_norm", "input_saliency"}:
        names = ("grad_norm", "cell_grad_norm") if "grad_norm" in wanted else ()
        names += ("input_saliency",) if "input_saliency" in wanted else ()
        origin, norms = lag_gradient_norms(model, batch, ctx.task, names, config.reference)
        parts.append(to_probe_rows(lag_frame(norms, origin), tuple(norms)))
    if "jacobian" in wanted:
        names = JACOBIAN_QUANTITIES + (("forget_product",) if "forget_product" in wanted else ())
        parts.append(to_probe_rows(jacobian_norms_by_lag(model, small), names))
    elif "forget_product" in wanted:  # the gates alone give it: no Jacobians needed
        with torch.no_grad():
            gates = model(small, return_states=True)[1].gates
        if "f" in gates:
            frame = lag_frame(
                {"forget_product": forget_product(gates["f"])}, torch.full((len(small),), common - 1)
            )
            parts.append(to_probe_rows(frame, ("forget_product",)))
    if "gates" in wanted:
        for gate, frame in gate_statistics(model, inputs).groupby("gate", sort=False):
            name = f"gate_{gate}"
            stats = (*STATS, "saturated")
            frame = frame.rename(columns={stat: stat_column(name, stat) for stat in stats})
            parts.append(to_probe_rows(frame.assign(lag=common - 1 - frame["t"]), (name,), stats))
    if "lyapunov" in wanted:
        k = min(config.lyapunov_k, model.hidden_size * len(model.cell.state_names))
        frame = lyapunov_spectrum(model, small, k)
        frame = frame.rename(
            columns={"k": "t", "exponent": "lyapunov"} | {s: f"lyapunov_{s}" for s in STATS[1:]}
        )
        parts.append(to_probe_rows(frame.assign(lag=-1), ("lyapunov",)))
    if "gradient_bound" in wanted and model.cell.gradient_bound() is not None:
        bound = float(rnn_gradient_bound(model)["bound"].iloc[0])
        parts.append(
            pd.DataFrame({"quantity": ["gradient_bound"], "t": -1, "lag": -1, "stat": "mean", "value": bound})
        )
    return parts


def make_probe(config: ProbeConfig) -> Callable[[ProbeContext], pd.DataFrame | None]:
    """A ``train`` callback recording ``config``'s quantities; returns None when not due."""
    if not isinstance(config, ProbeConfig):
        raise ValueError(f"config={config!r} is invalid: must be a ProbeConfig")

    def probe(ctx: ProbeContext) -> pd.DataFrame | None:
        if not _due(config, ctx):
            return None
        parts = _measure(config, ctx)
        rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=PROBE_COLUMNS[3:])
        rows = rows.assign(step=ctx.step, sequences_seen=ctx.sequences_seen, phase=ctx.phase)[PROBE_COLUMNS]
        return rows.astype(
            {
                "step": "int64",
                "sequences_seen": "int64",
                "phase": str,
                "quantity": str,
                "t": "int64",
                "lag": "int64",
                "stat": str,
                "value": "float64",
            }
        )

    return probe
