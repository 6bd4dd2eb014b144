"""Checks the cell tests share: a cell trained hard enough to move its orthogonal or unitary
parameters a long way, the cells' Jacobian products at rest, and a short probed run."""

import numpy as np
import torch

from seqmem.analysis import jacobian_norms_by_lag, make_probe
from seqmem.config import ProbeConfig, TrainConfig
from seqmem.train import build_model, train
from tasks import CopyTask

HIDDEN = 8  # the state size of ``trained``'s models
# what the probe records for a cell with one state block and no gates
PROBED = {"grad_norm", "input_saliency", "jacobian_spectral", "jacobian_frobenius", "lyapunov"}


def trained(preset: str, steps: int = 1000):
    """(model before, model after) ``steps`` float32 Adam steps at a large learning rate (every
    parameter group at 1e-2), so that its constrained matrix moves far from where it started."""
    config = TrainConfig(
        task="copy",
        task_params={"delay": 4, "n_copy": 2},
        cell=preset,
        hidden_size=HIDDEN,
        lr=1e-2,
        orthogonal_lr=1e-2,
        grad_clip=None,
        batch_size=4,
        max_steps=steps,
        eval_every=steps,
        eval_batch_size=4,
        stop_when_solved=False,
    )
    result = train(config, progress=False)
    assert result.status != "diverged" and result.steps == steps
    model = build_model(config)
    before = build_model(config)
    model.load_state_dict(result.state_dict)
    return before, model


def spectral_norms_by_lag(model, length: int = 60, dtype=torch.float64) -> np.ndarray:
    """Batch-mean ||dh_T/dh_t||_2 for every lag 0..length-1 on copy-task inputs."""
    model = model.to(dtype)
    task = CopyTask(delay=length - 2 * 3, n_copy=3)
    batch = task.sample(4, torch.Generator().manual_seed(0))
    frame = jacobian_norms_by_lag(model, batch, task, dtype=dtype)
    mean = frame[(frame["quantity"] == "jacobian_spectral") & (frame["stat"] == "mean")]
    assert mean["lag"].tolist() == list(range(length))
    return mean["value"].to_numpy()


def trained_and_probed(preset: str, **changes):
    """Six steps of a small adding run (``changes`` to its TrainConfig), probed at every
    evaluation; the run spent its budget and every probed value is finite."""
    config = TrainConfig(
        **{
            "task": "adding",
            "task_params": {"length": 12},
            "cell": preset,
            "hidden_size": 6,
            "batch_size": 8,
            "max_steps": 6,
            "eval_every": 3,
            "eval_batch_size": 16,
            **changes,
        }
    )
    probe = make_probe(ProbeConfig(batch_size=6, jacobian_batch_size=2, lyapunov_k=4))
    result = train(config, [probe], progress=False)
    assert result.status == "budget_exhausted" and result.steps == 6
    assert set(zip(result.probes["step"], result.probes["phase"], strict=True)) == {
        (0, "init"),
        (3, "train"),
        (6, "final"),
    }
    assert np.isfinite(result.probes["value"]).all()
    return result
