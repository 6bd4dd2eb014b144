"""Training one model on one task until it is solved, the budget is spent or the loss diverges.

``train(config, callbacks)`` builds the task and the model from a ``seqmem.config.TrainConfig``,
takes optimiser steps on fresh batches, evaluates on one fixed held-out batch at step 0, every
``eval_every`` steps and at the end, and returns a ``RunResult``: the tidy metrics history, the
rows the probe callbacks returned, and the final weights.

When a run ends is decided by small stopping rules, each testable alone: ``Divergence`` (a
NaN/Inf loss or gradient, or a training loss above ``max_loss_ratio`` x the memoryless baseline),
``Budget`` (steps or sequences), and what "solved" means -- ``SolvedEvaluations`` (the held-out
criterion with patience) or ``HochreiterStop`` (the 1997 paper's rule on the training stream).
``Stopping`` combines them into "done?" and the run's status.

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
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from seqmem import io
from seqmem.chunker import Chunker, make_chunker
from seqmem.config import TrainConfig, hochreiter_rule
from seqmem.model import SequenceModel, make_model
from tasks.base import Batch, Task, check_memory

__all__ = [
    "ProbeContext",
    "Callback",
    "RunResult",
    "TrainingStep",
    "StoppingRule",
    "Budget",
    "Divergence",
    "SolvedEvaluations",
    "HochreiterStop",
    "Stopping",
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

    def summary(self) -> dict[str, Any]:
        """The plain facts of the outcome (what a results store records beside the tables)."""
        return {
            "status": self.status,
            "steps": self.steps,
            "sequences_seen": self.sequences_seen,
            "diverged_step": self.diverged_step,
            "final_metrics": dict(self.final_metrics),
            "elapsed_s": self.elapsed_s,
        }


# -- models, optimisers, checkpoints ------------------------------------------------------------------


def build_model(config: TrainConfig) -> Model:
    """The model a run of ``config`` starts from (``config.model``: a ``SequenceModel`` or a
    ``Chunker``), initialised from ``config.seed``, on CPU.  torch's global RNG is restored
    afterwards, so building has no side effects."""
    build = make_chunker if config.model == "chunker" else make_model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build(
            config.cell,
            config.make_task(),
            config.hidden_size,
            cell_params=config.cell_params,
            input_to_output=config.input_to_output,
            logistic_output=config.logistic_output,
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
    sequence's loss summed over its scored steps, averaged over the batch) plus, for a
    ``Chunker``, its lower level's next-input prediction error."""
    task_loss = objective = task.loss(outputs, batch)
    if config.loss_reduction == "sequence_sum":
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


# -- stopping rules -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingStep:
    """One optimiser step as the stopping rules see it, before its update is applied."""

    step: int  # steps taken, this one included
    loss: float
    grad_norm: float  # global norm before clipping
    outputs: torch.Tensor  # detached
    batch: Batch


class StoppingRule:
    """A rule watching a run: ``triggered`` (it never resets) once it holds; ``status`` is what
    the run is then called.  Subclasses override the hooks they need."""

    status: ClassVar[str]

    def __init__(self) -> None:
        self.triggered = False

    def after_step(self, step: TrainingStep) -> None:
        """Called after every training step's backward pass."""

    def after_evaluation(self, solved: bool) -> None:
        """Called after every evaluation on the held-out batch (``solved``: it passed ``task.is_solved``)."""


class Budget(StoppingRule):
    """Spent after ``total_steps`` optimiser steps."""

    status = "budget_exhausted"

    def __init__(self, total_steps: int) -> None:
        super().__init__()
        self.total_steps = total_steps

    def after_step(self, step: TrainingStep) -> None:
        self.triggered = step.step >= self.total_steps


class Divergence(StoppingRule):
    """A step with a NaN or infinite loss or gradient norm, or a loss above ``max_loss``, has
    diverged; ``step`` records which."""

    status = "diverged"

    def __init__(self, max_loss: float = math.inf) -> None:
        super().__init__()
        self.max_loss = max_loss
        self.step: int | None = None

    def after_step(self, step: TrainingStep) -> None:
        finite = math.isfinite(step.loss) and math.isfinite(step.grad_norm)
        if not finite or step.loss > self.max_loss:
            self.triggered, self.step = True, step.step


class SolvedEvaluations(StoppingRule):
    """Solved once ``patience`` consecutive evaluations on the held-out batch pass the task's criterion."""

    status = "solved"

    def __init__(self, patience: int = 1) -> None:
        super().__init__()
        self.patience = patience
        self.streak = 0

    def after_evaluation(self, solved: bool) -> None:
        self.streak = self.streak + 1 if solved else 0
        self.triggered = self.triggered or self.streak >= self.patience


class HochreiterStop(StoppingRule):
    """The stopping rule of Hochreiter & Schmidhuber (1997) on the stream of training sequences:
    the mean loss of the ``window`` most recent training sequences is below ``max_loss`` (by default
    the paper's for the task, ``seqmem.config.hochreiter_rule``: 2,000 and 0.01 for experiments 4-6)
    and they pass
    ``task.is_solved`` (for the adding and temporal order tasks: all of them correct by
    ``task.sequence_correct``; for multiplication: fewer than 140 of 2,000 wrong, the paper's
    experiment 5 rule).  The loss is the task's own (squared error; cross-entropy for temporal
    order, where the paper used squared error too).  Judged on the outputs each step trained on,
    as the paper's online learner was.

    ``task.is_solved`` sees the task's full set of metrics over the window: ``loss``,
    ``loss_ratio`` and ``error_rate`` per sequence, exactly over the last ``window`` sequences;
    every other metric (``abs_error``, ``accuracy``, ...) as the mean of ``task.metrics`` over the
    training batches that cover them, weighted by their sizes (exact when a batch is one
    sequence, as in online learning; else over up to ``window + batch_size - 1`` sequences)."""

    status = "solved"

    def __init__(self, task: Task, window: int | None = None, max_loss: float | None = None) -> None:
        super().__init__()
        paper_window, paper_max_loss = hochreiter_rule(task.name)
        self.task = task
        self.window = paper_window if window is None else window
        self.max_loss = paper_max_loss if max_loss is None else max_loss
        self.losses: deque[float] = deque(maxlen=self.window)
        self.correct: deque[bool] = deque(maxlen=self.window)
        self.batch_metrics: deque[tuple[int, dict[str, float]]] = deque()

    def after_step(self, step: TrainingStep) -> None:
        self.triggered = self.update(step.outputs, step.batch) or self.triggered

    def update(self, outputs: torch.Tensor, batch: Batch) -> bool:
        """Add one training batch (its outputs); True when the rule holds after it."""
        with torch.no_grad():
            mask = batch.mask.to(outputs.dtype)
            per_sequence = (self.task.per_step_loss(outputs, batch) * mask).sum(1) / mask.sum(1).clamp_min(
                1.0
            )
            self.losses.extend(per_sequence.tolist())
            self.correct.extend(self.task.sequence_correct(outputs, batch).tolist())
            self.batch_metrics.append((batch.batch_size, self.task.metrics(outputs, batch)))
        while sum(n for n, _ in self.batch_metrics) - self.batch_metrics[0][0] >= self.window:
            self.batch_metrics.popleft()
        if len(self.correct) < self.window:
            return False
        loss = _mean(list(self.losses))
        if not loss < self.max_loss:
            return False
        sizes = np.array([n for n, _ in self.batch_metrics], dtype=float)
        window_metrics = {
            name: float(np.dot(sizes, [m[name] for _, m in self.batch_metrics]) / sizes.sum())
            for name in self.batch_metrics[-1][1]
        }
        window_metrics.update(
            loss=loss,
            loss_ratio=loss / self.task.baseline_loss(),
            error_rate=1.0 - sum(self.correct) / len(self.correct),
        )
        return bool(self.task.is_solved(window_metrics))


@dataclass
class Stopping:
    """The rules of one run together: it is done once it diverged, spent its budget, or was
    solved (unless ``stop_when_solved`` is False: then it trains on, to equal budgets)."""

    divergence: Divergence
    solved: StoppingRule
    budget: Budget
    stop_when_solved: bool = True

    @classmethod
    def for_run(cls, config: TrainConfig, task: Task) -> Stopping:
        ratio = math.inf if config.max_loss_ratio is None else config.max_loss_ratio
        divergence = Divergence(ratio * task.baseline_loss())
        hochreiter = config.stopping == "hochreiter1997"
        solved = HochreiterStop(task) if hochreiter else SolvedEvaluations(config.solve_patience)
        return cls(divergence, solved, Budget(config.total_steps), config.stop_when_solved)

    @property
    def done(self) -> bool:
        solved = self.stop_when_solved and self.solved.triggered
        return self.divergence.triggered or self.budget.triggered or solved

    @property
    def status(self) -> str:
        """Diverged beats solved (a solved run may diverge later), which beats a spent budget."""
        return next((r.status for r in (self.divergence, self.solved) if r.triggered), self.budget.status)

    def after_step(self, step: TrainingStep) -> None:
        self.divergence.after_step(step)
        if not self.divergence.triggered:  # a diverged step ends the run; nothing else judges it
            self.solved.after_step(step)
            self.budget.after_step(step)

    def after_evaluation(self, solved: bool) -> None:
        self.solved.after_evaluation(solved)


# -- the loop -------------------------------------------------------------------------------------


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
    )
