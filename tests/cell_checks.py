"""Checks the expRNN and uRNN tests share: a cell trained hard enough to move its orthogonal or
unitary parameters a long way, and the cells' Jacobian products at rest."""

import numpy as np
import torch

from seqmem.analysis import jacobian_norms_by_lag
from seqmem.config import TrainConfig
from seqmem.train import build_model, train
from tasks import CopyTask

HIDDEN = 8  # the state size of ``trained``'s models


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
    inputs = task.sample(4, torch.Generator().manual_seed(0)).inputs.to(dtype)
    assert model.input_size == task.input_size
    frame = jacobian_norms_by_lag(model, inputs)
    assert frame["lag"].tolist() == list(range(length))
    return frame["jacobian_spectral"].to_numpy()
