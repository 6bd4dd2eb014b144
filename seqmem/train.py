"""Training one model on one task until it is solved, the budget is spent or the loss diverges.

``TrainConfig`` is the whole recipe of a run: frozen, validated at construction, and
round-tripped through a canonical JSON-safe dict.  ``train(config)`` builds the task and the
model from it, takes optimiser steps on fresh batches, evaluates on one fixed held-out batch
at step 0, every ``eval_every`` steps and at the end, and returns a ``RunResult``: the tidy
metrics history, the rows the probe callbacks returned, and the final weights.

Reproducibility: everything random derives from ``config.seed`` -- the initial weights
(``build_model``), the training batches and the held-out batch (two independent generators
spawned from the seed).  ``train`` leaves torch's global RNG untouched, so the same config
gives the same history on CPU whatever the caller or the callbacks do with it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

import tasks
from seqmem.cells import cell_names
from seqmem.model import SequenceModel, make_model
from tasks.base import Batch, Task, check_choice, check_int

__all__ = [
    "OPTIMIZERS",
    "STOPPING_RULES",
    "HochreiterStop",
    "TaskParams",
    "TrainConfig",
    "ProbeContext",
    "Callback",
    "RunResult",
    "build_model",
    "make_optimizer",
    "train",
    "atomic_write",
    "save_checkpoint",
    "load_checkpoint",
]

OPTIMIZERS = ("adam", "rmsprop", "sgd")
STOPPING_RULES = ("eval", "hochreiter1997")
# Hochreiter & Schmidhuber (1997), experiment 4: stop once the average training error is below
# 0.01 and the 2,000 most recent training sequences were processed correctly.
HOCHREITER_WINDOW = 2000
HOCHREITER_MAX_LOSS = 0.01
DEVICE_TYPES = ("cpu", "cuda", "mps")
PHASES = ("init", "train", "final")


class TaskParams(Mapping[str, Any]):
    """A read-only, hashable dict of task parameters (kept sorted by name), so that the frozen
    ``TrainConfig`` holding it stays hashable.  Compares equal to a plain dict."""

    __slots__ = ("_items",)

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self._items = tuple(sorted(dict(params or {}).items()))

    def __getitem__(self, key: str) -> Any:
        return dict(self._items)[key]

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return repr(dict(self._items))

    def __reduce__(self) -> tuple[type, tuple[dict[str, Any]]]:
        return TaskParams, (dict(self._items),)


def _check_number(name: str, value: object, allowed: str, ok: Callable[[float], bool]) -> float:
    """``value`` as a float if it is a finite real number with ``ok(value)``, else a one-line ValueError."""
    real = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not (real and ok(value)):
        raise ValueError(f"{name}={value!r} is invalid: must be {allowed}")
    return float(value)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that determines a training run (keyword-only; validated at construction).

    task, task_params  a name from ``tasks.task_names()`` and its parameters; stored complete
                       (defaults filled in) as a read-only ``TaskParams`` mapping, so two
                       spellings of the same task give equal configs.
    cell, hidden_size  a preset from ``seqmem.cells.cell_names()`` and the state size.
    optimizer, lr      'adam', 'rmsprop' or 'sgd'; ``momentum`` is used by 'sgd' only.
    batch_size         sequences per optimiser step.
    max_steps, max_sequences
                       the budget; at least one; with both, whichever ends first.  A
                       sequence budget is rounded up to whole batches.
    grad_clip          clip the global gradient norm to this (Pascanu et al. 2013); None: off.
    eval_every, eval_batch_size
                       evaluate on one fixed held-out batch of this size every so many steps.
    solve_patience     the task counts as solved after this many consecutive evaluations that
                       pass ``task.is_solved``; ``stop_when_solved=False`` trains on to the
                       budget anyway (for equal-budget comparisons).
    stopping           what "solved" means: 'eval' -- the held-out evaluations, as above;
                       'hochreiter1997' -- the paper's rule on the training stream instead
                       (``HochreiterStop``; tasks with ``sequence_correct`` only).
    seed, device       the one seed everything random derives from; a torch device string.
    """

    task: str
    task_params: Mapping[str, Any] = field(default_factory=TaskParams)
    cell: str
    hidden_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    batch_size: int = 32
    max_steps: int | None = None
    max_sequences: int | None = None
    grad_clip: float | None = 1.0
    eval_every: int = 100
    eval_batch_size: int = 256
    solve_patience: int = 1
    stop_when_solved: bool = True
    stopping: str = "eval"
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_choice("task", self.task, tuple(tasks.task_names()))
        check_choice("cell", self.cell, tuple(cell_names()))
        check_int("hidden_size", self.hidden_size, 1)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_int("batch_size", self.batch_size, 1)
        for name in ("max_steps", "max_sequences"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), 1)
        if self.max_steps is None and self.max_sequences is None:
            raise ValueError("max_steps=None is invalid: give max_steps and/or max_sequences (the budget)")
        check_int("eval_every", self.eval_every, 1)
        check_int("eval_batch_size", self.eval_batch_size, 1)
        check_int("solve_patience", self.solve_patience, 1)
        if not isinstance(self.stop_when_solved, bool):
            raise ValueError(f"stop_when_solved={self.stop_when_solved!r} is invalid: must be True or False")
        check_choice("stopping", self.stopping, STOPPING_RULES)
        check_int("seed", self.seed, 0, 2**63 - 1)
        # Floats are stored as floats so that to_dict() is canonical (lr=1 and lr=1.0 are one run).
        numbers = {
            "lr": _check_number("lr", self.lr, "a finite number > 0", lambda v: v > 0),
            "momentum": _check_number("momentum", self.momentum, "a number in [0, 1)", lambda v: 0 <= v < 1),
        }
        if self.grad_clip is not None:
            numbers["grad_clip"] = _check_number(
                "grad_clip", self.grad_clip, "None or a finite number > 0", lambda v: v > 0
            )
        for name, value in numbers.items():
            object.__setattr__(self, name, value)
        self._check_device()
        task = self._build_task()
        if self.stopping == "hochreiter1997" and type(task).sequence_correct is Task.sequence_correct:
            raise ValueError(
                f"stopping={self.stopping!r} is invalid for task {self.task!r}: it needs a task with "
                "a per-sequence criterion (sequence_correct), e.g. adding, multiplication, temporal_order"
            )
        object.__setattr__(self, "task_params", TaskParams(task.params()))

    def _check_device(self) -> None:
        # Only the spelling is checked here: a config may be written on a machine without the
        # device it will run on; train() checks that the device exists before any work.
        try:
            kind = torch.device(self.device).type if isinstance(self.device, str) else None
        except RuntimeError:
            kind = None
        if kind not in DEVICE_TYPES:
            raise ValueError(
                f"device={self.device!r} is invalid: must be a torch device string of type "
                f"{', '.join(DEVICE_TYPES)} (e.g. 'cpu', 'cuda:0')"
            )

    def _build_task(self) -> Task:
        if not isinstance(self.task_params, Mapping):
            raise ValueError(
                f"task_params={self.task_params!r} is invalid: must be a dict of task parameters"
            )
        params = dict(self.task_params)
        for key, value in params.items():
            if not isinstance(value, int | float | str | bool):
                raise ValueError(
                    f"task_params={params!r} is invalid: {key}={value!r} must be an int, float, str or bool"
                )
        try:
            return tasks.make_task(self.task, **params)
        except (TypeError, ValueError) as error:  # TypeError: a required parameter is missing
            raise ValueError(f"task_params={params!r} is invalid: task {self.task!r}: {error}") from None

    def make_task(self) -> Task:
        """The task this config trains on."""
        return tasks.make_task(self.task, **self.task_params)

    @property
    def total_steps(self) -> int:
        """Optimiser steps the budget allows (the smaller budget if both are given)."""
        budgets = [] if self.max_steps is None else [self.max_steps]
        if self.max_sequences is not None:
            budgets.append(math.ceil(self.max_sequences / self.batch_size))
        return min(budgets)

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON-safe dict: every field in declaration order, task_params sorted and complete."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {**values, "task_params": dict(self.task_params)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Inverse of ``to_dict``; fields left out take their defaults."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name in values:
            if name not in fields:
                raise ValueError(
                    f"{name}={values[name]!r} is invalid: not a TrainConfig field ({', '.join(fields)})"
                )
        for name, f in fields.items():
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required and name not in values:
                raise ValueError(f"{name} is missing: TrainConfig requires it")
        return cls(**values)


@dataclass(frozen=True)
class ProbeContext:
    """What a callback sees at an evaluation.  The model is in train mode with gradients
    enabled (probes differentiate through it); a callback must not change its weights."""

    model: SequenceModel
    task: Task
    config: TrainConfig
    eval_batch: Batch
    step: int
    sequences_seen: int
    phase: Literal["init", "train", "final"]


Callback = Callable[[ProbeContext], pd.DataFrame | None]


@dataclass(frozen=True, eq=False)
class RunResult:
    """The outcome of ``train``.

    status          'solved' (the solve criterion held at some evaluation), 'diverged' (a
                    non-finite loss or gradient at ``diverged_step``; that step's update is not
                    applied, so ``state_dict`` holds the last finite weights) or 'budget_exhausted'.
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


def build_model(config: TrainConfig) -> SequenceModel:
    """The model a run of ``config`` starts from: initialised from ``config.seed``, on CPU.
    torch's global RNG is restored afterwards, so building has no side effects."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return make_model(config.cell, config.make_task(), config.hidden_size)


def make_optimizer(config: TrainConfig, parameters: Sequence[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=config.lr)
    return torch.optim.Adam(parameters, lr=config.lr)


def _resolve_device(name: str) -> torch.device:
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


def _evaluate(model: SequenceModel, task: Task, batch: Batch) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        metrics = task.metrics(model(batch.inputs), batch)
    model.train()
    return metrics


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


class HochreiterStop:
    """The stopping rule of Hochreiter & Schmidhuber (1997) on the stream of training sequences:
    the mean loss of the ``window`` most recent training sequences is below ``max_loss`` and they
    pass ``task.is_solved`` (for the adding and temporal order tasks: all of them correct by
    ``task.sequence_correct``; for multiplication: fewer than 140 of 2,000 wrong, the paper's
    experiment 5 rule).  The loss is the task's own (squared error; cross-entropy for temporal
    order, where the paper used squared error too)."""

    def __init__(
        self, task: Task, window: int = HOCHREITER_WINDOW, max_loss: float = HOCHREITER_MAX_LOSS
    ) -> None:
        self.task, self.max_loss = task, max_loss
        self.losses: deque[float] = deque(maxlen=window)
        self.correct: deque[bool] = deque(maxlen=window)

    def update(self, outputs: torch.Tensor, batch: Batch) -> bool:
        """Add one training batch (its outputs); True when the rule holds after it."""
        with torch.no_grad():
            mask = batch.mask.to(outputs.dtype)
            per_sequence = (self.task.per_step_loss(outputs, batch) * mask).sum(1) / mask.sum(1).clamp_min(
                1.0
            )
            self.losses.extend(per_sequence.tolist())
            self.correct.extend(self.task.sequence_correct(outputs, batch).tolist())
        if len(self.correct) < self.correct.maxlen:
            return False
        loss = _mean(list(self.losses))
        error_rate = 1.0 - sum(self.correct) / len(self.correct)
        metrics = {"loss": loss, "loss_ratio": loss / self.task.baseline_loss(), "error_rate": error_rate}
        return loss < self.max_loss and bool(self.task.is_solved(metrics))


def train(config: TrainConfig, callbacks: Sequence[Callback] = (), progress: bool | None = None) -> RunResult:
    """Train ``config``'s model on its task; see ``RunResult`` for what comes back.

    ``callbacks`` are called at step 0 (phase 'init'), at every later evaluation ('train') and
    once at the end ('final'; at step 0 too if the task is solved there).  ``progress``: a tqdm
    bar on stderr; None shows it only when stderr is a terminal.
    """
    # Vanishing float32 gradients pass through subnormal numbers, which x86 CPUs process up to
    # 40x slower; flushing them to zero leaves every loss unchanged (values below 1e-38).
    torch.set_flush_denormal(True)
    device = _resolve_device(config.device)
    task = config.make_task()
    model = build_model(config).to(device)
    model.train()
    parameters = list(model.parameters())
    optimizer = make_optimizer(config, parameters)
    train_generator, eval_generator = _generators(config.seed)
    eval_batch = task.sample(config.eval_batch_size, eval_generator).to(device)
    max_norm = math.inf if config.grad_clip is None else config.grad_clip
    total_steps = config.total_steps

    bar = tqdm(
        total=total_steps * config.batch_size,
        unit="seq",
        unit_scale=True,
        desc=f"{config.cell} {config.task}",
        disable=None if progress is None else not progress,
        leave=False,
    )
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    probes: list[pd.DataFrame] = []
    losses: list[float] = []  # training losses and gradient norms since the last evaluation
    norms: list[float] = []
    step = seen = streak = 0
    reached = False  # the solve criterion held (solve_patience consecutive solved evaluations)
    rule = HochreiterStop(task) if config.stopping == "hochreiter1997" else None
    diverged_step: int | None = None
    while True:
        stopping_now = reached and config.stop_when_solved  # the training-stream rule just held
        if step % config.eval_every == 0 or step >= total_steps or diverged_step is not None or stopping_now:
            metrics = _evaluate(model, task, eval_batch)
            solved = bool(task.is_solved(metrics))
            streak = streak + 1 if solved else 0
            if rule is None:
                reached = reached or streak >= config.solve_patience
            rows.append(
                {
                    "step": step,
                    "sequences_seen": seen,
                    **metrics,
                    "train_loss": _mean(losses),
                    "grad_norm": _mean(norms),
                    "grad_norm_max": _max(norms),
                    "elapsed_s": time.perf_counter() - start,
                    "solved": solved,
                }
            )
            losses, norms = [], []
            done = diverged_step is not None or step >= total_steps or (reached and config.stop_when_solved)
            phases = ["init"] if step == 0 else []
            if done:
                phases.append("final")
            elif step > 0:
                phases.append("train")
            for phase in phases:
                ctx = ProbeContext(model, task, config, eval_batch, step, seen, phase)
                probes.extend(_run_callbacks(callbacks, ctx))
            # loss, loss_ratio and the task's first own metric (accuracy, abs_error, ...)
            bar.set_postfix({name: f"{value:.3g}" for name, value in list(metrics.items())[:3]})
            if done:
                break

        batch = task.sample(config.batch_size, train_generator).to(device)
        outputs = model(batch.inputs)
        loss = task.loss(outputs, batch)
        optimizer.zero_grad(set_to_none=True)  # also drops gradients a probe may have left
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm)
        step, seen = step + 1, seen + config.batch_size
        losses.append(loss.item())
        norms.append(norm.item())
        bar.update(config.batch_size)
        if not (math.isfinite(losses[-1]) and math.isfinite(norms[-1])):
            diverged_step = step  # skip the update: the weights stay finite for the last evaluation
            continue
        if rule is not None:  # judged on the outputs this step trained on, as the paper's online learner
            reached = rule.update(outputs.detach(), batch) or reached
        optimizer.step()
    bar.close()

    history = pd.DataFrame(rows)
    status = "diverged" if diverged_step is not None else "solved" if reached else "budget_exhausted"
    labels = ["step", "sequences_seen", "phase"]
    return RunResult(
        config=config,
        status=status,
        history=history,
        probes=pd.concat(probes, ignore_index=True) if probes else pd.DataFrame(columns=labels),
        steps=step,
        sequences_seen=seen,
        diverged_step=diverged_step,
        final_metrics=dict(metrics),
        elapsed_s=time.perf_counter() - start,
        state_dict={name: t.detach().to("cpu", copy=True) for name, t in model.state_dict().items()},
    )


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call ``write(temp_path)`` on a temporary file beside ``path`` and rename it over ``path``,
    so a crash or kill never leaves a half-written file under the final name."""
    path = Path(path)
    # a unique name that ``write`` creates itself, so the file gets the usual permissions
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(temp)
        with open(temp, "rb+") as handle:  # on disk before the rename, so power loss can't tear it
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(path: str | os.PathLike[str], model: SequenceModel, config: TrainConfig) -> Path:
    """Save the weights and the config (as its dict, so loading needs no pickled classes)."""
    payload = {"state_dict": model.state_dict(), "config": config.to_dict()}
    return atomic_write(path, lambda temp: torch.save(payload, temp))


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[SequenceModel, TrainConfig]:
    """The model (on CPU) and config saved by ``save_checkpoint``."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    config = TrainConfig.from_dict(payload["config"])
    model = build_model(config)
    model.load_state_dict(payload["state_dict"])
    return model, config
