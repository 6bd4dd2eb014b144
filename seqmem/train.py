"""Training one model on one task until it is solved, the budget is spent or the loss diverges.

``train(config, callbacks)`` builds the task and the model from a ``seqmem.config.TrainConfig``,
takes optimiser steps on fresh batches, evaluates on one fixed held-out batch at step 0, every
``eval_every`` steps and at the end, and returns a ``RunResult``: the tidy metrics history, the
rows the probe callbacks returned, and the final weights.

When a run ends is decided by the stopping rules of ``seqmem.stopping`` (divergence, budget,
solved), fed every training step and every evaluation.  A net grown as in Hochreiter &
Schmidhuber's experiment 2 (``config.cell_joins_at_plateau``) gets its cell once the training loss
has stopped decreasing (``Plateau``).

Reproducibility: everything random derives from ``config.seed`` -- the initial weights
(``build_model``), the training batches and the held-out batch (two independent generators
spawned from the seed).  ``train`` leaves torch's global RNG untouched, and restores the
process-wide denormal setting it changes, so the same config gives the same history on CPU
whatever the caller or the callbacks do.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from seqmem import io
from seqmem.chunker import Chunker, make_chunker
from seqmem.config import TrainConfig
from seqmem.model import SequenceModel, make_model
from seqmem.stopping import Stopping, TrainingStep
from tasks.base import Batch, Task, check_memory

__all__ = [
    "ProbeContext",
    "PLATEAU_TOLERANCE",
    "Plateau",
    "Callback",
    "RunResult",
    "Model",
    "build_model",
    "training_loss",
    "make_optimizer",
    "load_model",
    "denormals_flushed",
    "flushing_denormals",
    "resolve_device",
    "train",
]

Model = SequenceModel | Chunker  # what config.model builds


@dataclass(frozen=True)
class ProbeContext:
    """What a callback sees at an evaluation.  The model is in train mode with gradients
    enabled (probes differentiate through it); a callback must not change its weights.
    ``history_row`` is this evaluation's row of ``RunResult.history`` (a copy)."""

    model: Model
    task: Task
    config: TrainConfig
    eval_batch: Batch
    step: int
    sequences_seen: int
    phase: Literal["init", "train", "final"]
    history_row: dict[str, Any] = field(default_factory=dict)


Callback = Callable[[ProbeContext], pd.DataFrame | None]


@dataclass(frozen=True, eq=False)
class RunResult:
    """The outcome of ``train``.

    status          'solved' (the solve criterion held), 'diverged' (see ``Divergence``; the
                    diverging step's update is not applied, so ``state_dict`` holds the last
                    weights before it) or 'budget_exhausted'.
    history         one row per evaluation, step 0 included: step, sequences_seen, the task's
                    metrics on the held-out batch (loss, loss_ratio, ...), train_loss and
                    grad_norm (means over the steps since the previous row; grad_norm is the
                    global norm before clipping), grad_norm_max, elapsed_s, solved (this
                    evaluation passed ``task.is_solved``).
    probes          the callbacks' rows, with step, sequences_seen and phase columns.
    final_metrics   the task's metrics at the last evaluation.
    state_dict      the final weights, on CPU.
    cell_joined_step
                    for a growing net (``config.cell_joins_at_plateau``), the step after which
                    its cell joined (None: it never did); None for every other net.
    """

    config: TrainConfig
    status: Literal["solved", "budget_exhausted", "diverged"]
    history: pd.DataFrame
    probes: pd.DataFrame
    steps: int
    sequences_seen: int
    diverged_step: int | None
    final_metrics: dict[str, float]
    elapsed_s: float
    state_dict: dict[str, torch.Tensor]
    cell_joined_step: int | None = None

    def summary(self) -> dict[str, Any]:
        """The plain facts of the outcome (what a results store records beside the tables)."""
        return {
            "status": self.status,
            "steps": self.steps,
            "sequences_seen": self.sequences_seen,
            "diverged_step": self.diverged_step,
            "final_metrics": dict(self.final_metrics),
            "elapsed_s": self.elapsed_s,
            "cell_joined_step": self.cell_joined_step,
        }


# -- models, optimisers, checkpoints ------------------------------------------------------------------


def build_model(config: TrainConfig) -> Model:
    """The model a run of ``config`` starts from (``config.model``: a ``SequenceModel`` or a
    ``Chunker``), initialised from ``config.seed``, on CPU.  torch's global RNG is restored
    afterwards, so building has no side effects."""
    build = make_chunker if config.model == "chunker" else make_model
    # only a SequenceModel grows (TrainConfig refuses a growing chunker)
    growing = {"cell_joins_later": True} if config.cell_joins_at_plateau is not None else {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build(
            config.cell,
            config.make_task(),
            config.hidden_size,
            cell_params=config.cell_params,
            input_to_output=config.input_to_output,
            logistic_output=config.logistic_output,
            **growing,
        )
        if config.readout_init_range is not None:
            with torch.no_grad():
                for readout in (model.readout, model.input_readout):
                    for parameter in readout.parameters() if readout is not None else ():
                        parameter.uniform_(-config.readout_init_range, config.readout_init_range)
    return model


def training_loss(
    config: TrainConfig, model: Model, task: Task, outputs: torch.Tensor, batch: Batch
) -> tuple[torch.Tensor, torch.Tensor]:
    """(objective, task loss): what a training step descends, and the task's own loss of the batch
    (``task.loss``, what the history and the divergence bound report).  The objective is the task's
    loss reduced by ``config.loss_reduction`` ('mean': ``task.loss``; 'sequence_sum': each
    sequence's loss summed over its scored steps, averaged over the batch) -- with
    ``logistic_loss='cross_entropy'`` the logistic outputs' cross-entropy in its place -- plus, for a
    ``Chunker``, its lower level's next-input prediction error."""
    task_loss = objective = task.loss(outputs, batch)
    if config.logistic_loss == "cross_entropy":
        # the logistic units' outputs and targets at the scored steps, the targets read as probabilities
        probabilities, targets = outputs[..., 0][batch.mask], batch.targets[batch.mask].to(outputs.dtype)
        if config.loss_reduction == "sequence_sum":
            objective = F.binary_cross_entropy(probabilities, targets, reduction="sum") / batch.batch_size
        else:
            objective = F.binary_cross_entropy(probabilities, targets)
    elif config.loss_reduction == "sequence_sum":
        objective = (
            task.per_step_loss(outputs, batch) * batch.mask.to(outputs.dtype)
        ).sum() / batch.batch_size
    if isinstance(model, Chunker):
        objective = objective + model.prediction_loss
    return objective, task_loss


def make_optimizer(config: TrainConfig, model: SequenceModel) -> torch.optim.Optimizer:
    """``config.optimizer`` over ``model``'s parameters at ``config.lr``; with ``orthogonal_lr`` set,
    the cell's ``orthogonal_parameters()`` form a second group at that rate."""
    orthogonal = model.cell.orthogonal_parameters() if config.orthogonal_lr is not None else []
    kept = {id(p) for p in orthogonal}
    groups = [{"params": [p for p in model.parameters() if id(p) not in kept]}]
    if orthogonal:
        groups.append({"params": orthogonal, "lr": config.orthogonal_lr})
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=config.lr)
    return torch.optim.Adam(groups, lr=config.lr)


def load_model(path: str | os.PathLike[str]) -> tuple[Model, TrainConfig]:
    """The model (on CPU) and the config of a checkpoint written by ``seqmem.io.save_checkpoint``."""
    state_dict, config_dict = io.load_checkpoint(path)
    config = TrainConfig.from_dict(config_dict)
    model = build_model(config)
    model.load_state_dict(state_dict)
    return model, config


# -- subnormal numbers ----------------------------------------------------------------------------


def denormals_flushed() -> bool:
    """Whether this thread's CPU flushes float32 subnormals to zero.  torch can set the mode
    (``torch.set_flush_denormal``) but not report it, so halve the smallest normal float32:
    the exact result, 2^-127, is subnormal, and it comes out zero only when flushing is on."""
    smallest_normal = torch.tensor(2.0**-126, dtype=torch.float32)
    return bool(smallest_normal * 0.5 == 0)


@contextmanager
def flushing_denormals() -> Iterator[None]:
    """Flush subnormals to zero inside the block; the previous mode is restored afterwards."""
    before = denormals_flushed()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


# -- the loop -------------------------------------------------------------------------------------

PLATEAU_TOLERANCE = 0.01  # "stopped decreasing": less than 1 % better than the window before


class Plateau:
    """Whether a training loss has stopped decreasing: every ``window`` steps, the mean of the
    last ``window`` losses is compared with the mean of the ``window`` before; ``reached`` once it
    is less than ``PLATEAU_TOLERANCE`` below it (or above it).  The 1997 paper does not say how it
    decided; this is our reading."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.losses: list[float] = []
        self.reached = False

    def add(self, loss: float) -> bool:
        """Record one step's loss; True when the plateau is reached at this step."""
        if self.reached:
            return False
        self.losses.append(loss)
        if len(self.losses) < 2 * self.window or len(self.losses) % self.window:
            return False
        before = float(np.mean(self.losses[-2 * self.window : -self.window]))
        last = float(np.mean(self.losses[-self.window :]))
        self.reached = last > before * (1 - PLATEAU_TOLERANCE)
        return self.reached


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)``, or a one-line ValueError if this machine has no such device."""
    device = torch.device(name)
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count(),
        "mps": torch.backends.mps.is_available(),
    }
    if not available[device.type]:
        raise ValueError(f"device={name!r} is invalid: no such device on this machine")
    return device


def _generators(seed: int) -> tuple[torch.Generator, torch.Generator]:
    """Independent generators for the training batches and the held-out batch."""
    train_seed, eval_seed = (
        int(s.generate_state(1, np.uint64)[0]) for s in np.random.SeedSequence(seed).spawn(2)
    )
    return torch.Generator().manual_seed(train_seed), torch.Generator().manual_seed(eval_seed)


def _check_batch_memory(config: TrainConfig, task: Task) -> None:
    """Refuse batch sizes whose forward pass cannot fit in memory, before anything is allocated:
    every step of a sequence keeps at least its hidden state and its outputs (float32), beside
    the batch itself."""
    states_and_outputs = (task.memory_lag + 1) * 4 * (config.hidden_size + task.output_size)
    per_sequence = task.min_batch_bytes(1) + states_and_outputs
    for name in ("batch_size", "eval_batch_size"):
        size = getattr(config, name)
        check_memory(name, size, size * per_sequence, f"a forward pass over {size} sequences of {task}")


def _evaluate(model: Model, task: Task, batch: Batch) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        metrics = task.metrics(model(batch.inputs), batch)
    model.train()
    return metrics


def _phases(step: int, done: bool) -> list[str]:
    """The probe phases of an evaluation: 'init' at step 0, then 'final' at the end or 'train'."""
    phases = ["init"] if step == 0 else []
    if done:
        phases.append("final")
    elif step > 0:
        phases.append("train")
    return phases


def _run_callbacks(callbacks: Sequence[Callback], ctx: ProbeContext) -> list[pd.DataFrame]:
    labels = {"step": ctx.step, "sequences_seen": ctx.sequences_seen, "phase": ctx.phase}
    frames = []
    for callback in callbacks:
        frame = callback(ctx)
        ctx.model.train()  # a probe may switch to eval mode; training goes on in train mode
        if frame is not None and not frame.empty:
            missing = {k: v for k, v in labels.items() if k not in frame.columns}
            frames.append(frame.assign(**missing)[[*missing, *frame.columns]])
    return frames


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def _max(values: list[float]) -> float:
    return float(np.max(values)) if values else math.nan  # np.max propagates NaN; max() does not


class _History:
    """The history rows: one per evaluation, with the training losses and gradient norms of the
    steps since the previous one."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.rows: list[dict[str, Any]] = []
        self.losses: list[float] = []
        self.norms: list[float] = []

    def add_step(self, step: TrainingStep) -> None:
        self.losses.append(step.loss)
        self.norms.append(step.grad_norm)

    def add_evaluation(self, step: int, seen: int, metrics: dict[str, float], solved: bool) -> None:
        self.rows.append(
            {
                "step": step,
                "sequences_seen": seen,
                **metrics,
                "train_loss": _mean(self.losses),
                "grad_norm": _mean(self.norms),
                "grad_norm_max": _max(self.norms),
                "elapsed_s": self.elapsed_s(),
                "solved": solved,
            }
        )
        self.losses, self.norms = [], []

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.start


def train(config: TrainConfig, callbacks: Sequence[Callback] = (), progress: bool | None = None) -> RunResult:
    """Train ``config``'s model on its task; see ``RunResult`` for what comes back.

    ``callbacks`` are called at step 0 (phase 'init'), at every later evaluation ('train') and
    once at the end ('final'; at step 0 too if the task is solved there).  ``progress``: a tqdm
    bar on stderr; None shows it only when stderr is a terminal.
    """
    device = resolve_device(config.device)
    # Vanishing float32 gradients pass through subnormal numbers, which x86 CPUs process up to
    # 40x slower; flushing them to zero leaves every loss unchanged (values below 1e-38).  The
    # callbacks' probes run inside too, so their numbers are those of the training process.
    with flushing_denormals():
        task = config.make_task()
        _check_batch_memory(config, task)
        model = build_model(config).to(device)
        model.train()
        parameters = list(model.parameters())
        optimizer = make_optimizer(config, model)
        max_norm = math.inf if config.grad_clip is None else config.grad_clip
        train_generator, eval_generator = _generators(config.seed)
        eval_batch = task.sample(config.eval_batch_size, eval_generator).to(device)
        stopping = Stopping.for_run(config, task)
        window = config.cell_joins_at_plateau
        plateau = Plateau(window) if window is not None else None
        cell_joined_step = None
        history = _History()
        probes: list[pd.DataFrame] = []
        bar = tqdm(
            total=config.total_steps * config.batch_size,
            unit="seq",
            unit_scale=True,
            desc=f"{config.cell} {config.task}",
            disable=None if progress is None else not progress,
            leave=False,
        )

        def evaluate(step: int, seen: int) -> dict[str, float]:
            """Score the held-out batch, let the rules see it, record the row and run the probes."""
            metrics = _evaluate(model, task, eval_batch)
            solved = bool(task.is_solved(metrics))
            stopping.after_evaluation(solved)
            history.add_evaluation(step, seen, metrics, solved)
            for phase in _phases(step, stopping.done):
                ctx = ProbeContext(model, task, config, eval_batch, step, seen, phase, dict(history.rows[-1]))
                probes.extend(_run_callbacks(callbacks, ctx))
            # loss, loss_ratio and the task's first own metric (accuracy, abs_error, ...)
            bar.set_postfix({name: f"{value:.3g}" for name, value in list(metrics.items())[:3]})
            return metrics

        step = seen = 0
        metrics = evaluate(step, seen)
        while not stopping.done:
            batch = task.sample(config.batch_size, train_generator).to(device)
            outputs = model(batch.inputs)
            objective, loss = training_loss(config, model, task, outputs, batch)
            optimizer.zero_grad(set_to_none=True)  # also drops gradients a probe may have left
            objective.backward()
            norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm)
            step, seen = step + 1, seen + config.batch_size
            record = TrainingStep(step, loss.item(), norm.item(), outputs.detach(), batch)
            history.add_step(record)
            bar.update(config.batch_size)
            stopping.after_step(record)
            if not stopping.divergence.triggered:  # a diverging update is skipped: the weights stay finite
                optimizer.step()
            if plateau is not None and plateau.add(record.loss):
                model.join_cell()  # from the next step on
                cell_joined_step = step
            if step % config.eval_every == 0 or stopping.done:
                metrics = evaluate(step, seen)
        bar.close()

    no_probes = pd.DataFrame(columns=["step", "sequences_seen", "phase"])
    return RunResult(
        config=config,
        status=stopping.status,
        history=pd.DataFrame(history.rows),
        probes=pd.concat(probes, ignore_index=True) if probes else no_probes,
        steps=step,
        sequences_seen=seen,
        diverged_step=stopping.divergence.step,
        final_metrics=dict(metrics),
        elapsed_s=history.elapsed_s(),
        state_dict={name: t.detach().to("cpu", copy=True) for name, t in model.state_dict().items()},
        cell_joined_step=cell_joined_step,
    )
