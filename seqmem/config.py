"""What a run is: ``TrainConfig`` (the training recipe), ``ProbeConfig`` (what to measure while
training) and ``RunConfig`` (the two together, identified by a hash).

Every config is a frozen dataclass, validated at construction (a bad value is a one-line
ValueError naming the field, the value and what is allowed) and round-tripped through a
canonical JSON-safe dict (``to_dict`` / ``from_dict``).

Run identity and schema evolution.  A run's id is the hash of its ``RunConfig``'s canonical
JSON, and it names the run's folder on disk, so it must never change for a config that an
earlier version could write.  Fields added after 0.1.0 are declared with ``later_field``
(their metadata says since which version): they enter the identity only while they differ
from their default.  A config written by 0.1.0 therefore keeps its id, and its results folder
still resumes; a later field's default must never change.

``config.py`` sits above ``seqmem.cells`` (``TrainConfig`` checks cell names against the preset
registry) and ``tasks``, and below everything else.  (It is a little over 500 lines: the three
configs, each field's documentation and validation, kept in one file because the run identity
depends on all of them together.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

import tasks
from seqmem.cells import cell_names, make_cell
from tasks.base import Task, check_choice, check_fields, check_int, plain_number, plain_numbers

__all__ = [
    "OPTIMIZERS",
    "MODELS",
    "LOSS_REDUCTIONS",
    "LOGISTIC_LOSSES",
    "STOPPING_RULES",
    "DEVICE_TYPES",
    "DEFAULT_PROBE_QUANTITIES",
    "PROBE_QUANTITIES",
    "PROBE_DTYPES",
    "REFERENCES",
    "SINCE",
    "HOCHREITER_RULE",
    "HOCHREITER_RULES",
    "hochreiter_rule",
    "TaskParams",
    "TrainConfig",
    "ProbeConfig",
    "RunConfig",
    "later_field",
    "identity_dict",
]

OPTIMIZERS = ("adam", "rmsprop", "sgd")
MODELS = ("sequence", "chunker")  # seqmem.model.SequenceModel, seqmem.chunker.Chunker
# 'mean': the task's loss, a mean over every scored step of the batch; 'sequence_sum': per sequence
# the sum over its scored steps, averaged over the batch (the error an online learner sums per
# sequence: Hochreiter & Schmidhuber 1997, appendix A.1)
LOSS_REDUCTIONS = ("mean", "sequence_sum")
# the error a logistic output unit is trained on: 'squared' (the task's squared error, the 1997
# paper's) or 'cross_entropy' (its target read as a probability; gradient y - t at the unit's net
# input, without the squared error's factor f'(net) = y (1 - y))
LOGISTIC_LOSSES = ("squared", "cross_entropy")
STOPPING_RULES = ("eval", "hochreiter1997")
DEVICE_TYPES = ("cpu", "cuda", "mps")
# what a ProbeConfig records by default; 'jacobian' is the family of Jacobian-product norms.
# Never change it: the default is part of every run id (see identity_dict).
DEFAULT_PROBE_QUANTITIES = (
    "grad_norm",
    "input_saliency",
    "jacobian",
    "forget_product",
    "gates",
    "lyapunov",
    "gradient_bound",
)
# what a ProbeConfig can ask for: the default ones and the costly connectivity heatmap
PROBE_QUANTITIES = (*DEFAULT_PROBE_QUANTITIES, "connectivity")
PROBE_DTYPES = {"float32": torch.float32, "float64": torch.float64}
# stopping='hochreiter1997': Hochreiter & Schmidhuber (1997)'s rule on the stream of training
# sequences, (window, bound): the ``window`` most recent sequences all pass the task's criterion and
# their mean loss is below ``bound``.  Experiments 4-6 (ST3): 2,000 sequences, mean error below 0.01.
# Per task where the paper differs: experiment 2 (2a-2c) asks for every sequence within ABS(0.25) /
# ABS(0.2) "during 10,000 successive, randomly chosen input sequences", with no bound on the error;
# experiment 1 for every string of its 256 training and 256 test strings predicted right -- read
# here as 512 successive fresh strings, with no bound on the error (the cross-entropy of the
# grammar's coin-flip branches cannot approach 0.01).
HOCHREITER_RULE = (2000, 0.01)
HOCHREITER_RULES = {
    "long_lag": (10_000, math.inf),
    "very_long_lag": (10_000, math.inf),
    "embedded_reber": (512, math.inf),
}


def hochreiter_rule(task_name: str) -> tuple[int, float]:
    """(window, bound on the window's mean loss) of the paper's stopping rule for a task."""
    return HOCHREITER_RULES.get(task_name, HOCHREITER_RULE)


# the step from which gradients are measured: the task's reference step, or the full loss
REFERENCES = ("last", "all")
SINCE = "since"  # field metadata: the version that added the field (absent: 0.1.0)


# -- schema evolution -----------------------------------------------------------------------------


def later_field(default: Any, since: str) -> Any:
    """A dataclass field added after 0.1.0, in version ``since``: left out of the run identity
    while it holds ``default`` (which must therefore never change)."""
    return field(default=default, metadata={SINCE: since})


def identity_dict(config: TrainConfig | ProbeConfig) -> dict[str, Any]:
    """``config.to_dict()`` without the later fields that hold their default: what a run id hashes."""
    values = config.to_dict()
    for f in dataclasses.fields(config):
        if SINCE in f.metadata and getattr(config, f.name) == f.default:
            del values[f.name]
    return values


def _from_dict(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` as keyword arguments of ``cls``, after the one check of unknown and missing fields."""
    if not isinstance(values, Mapping):
        raise ValueError(f"{cls.__name__}={values!r} is invalid: must be a dict of its fields")
    check_fields(cls.__name__, cls, values)
    return dict(values)


def _check_number(name: str, value: object, allowed: str, ok: Callable[[float], bool]) -> float:
    """``value`` as a float if it is a finite real number with ``ok(value)``, else a one-line ValueError."""
    real = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not (real and ok(value)):
        raise ValueError(f"{name}={value!r} is invalid: must be {allowed}")
    return float(value)


# -- training ---------------------------------------------------------------------------------------


class TaskParams(Mapping[str, Any]):
    """A read-only, hashable dict of task (or cell) parameters (kept sorted by name), so that the
    frozen ``TrainConfig`` holding it stays hashable.  Compares equal to a plain dict."""

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
                       (``seqmem.stopping.HochreiterStop``; tasks with ``sequence_correct`` only).
    seed, device       the one seed everything random derives from; a torch device string.
    max_loss_ratio     (since 0.2.0) the run has diverged once a training batch's loss exceeds
                       this multiple of the task's memoryless baseline loss (as it has on a
                       NaN or infinite loss or gradient); None: only NaN/Inf count.  Part of
                       the run id only when it is not the default, 1e6.
    orthogonal_lr      (since 0.3.0) the learning rate of the parameters that keep the cell's
                       recurrent matrix orthogonal or unitary (``cell.orthogonal_parameters()``:
                       the expRNN's skew-symmetric A, the uRNN's phases and reflections); the
                       expRNN papers train them 10x slower than the rest.  None: ``lr``, like
                       every other parameter.  Only for cells that have such parameters; part of
                       the run id only when set.

    Since 0.3.0 (each part of the run id only when it is not its default):
    cell_params        the cell preset's own options, e.g. the block layout of 'lstm1997'
                       ({"block_size": 2, "input_gate_bias": [-3, -6]}); numbers, strings,
                       booleans or lists of numbers.  Default {}.
    input_to_output    the readout also sees the inputs (the paper's experiment 2 nets: "each
                       layer connected from all layers below").  Default False.
    logistic_output    squash the outputs with the logistic sigmoid: the 1997 paper's output
                       units, for regression tasks (whose targets lie in [0, 1] there); the
                       loss stays the task's squared error.  Default False.
    readout_init_range the readout's weights and biases ~ U[-r, r] (the 1997 paper draws every
                       weight of its nets, output layer included, from one such range); None:
                       torch.nn's default, U[-1/sqrt(fan_in), 1/sqrt(fan_in)].  Default None.
    model              'sequence' (``SequenceModel``: one cell, a readout at every step) or
                       'chunker' (``seqmem.chunker.Chunker``: Schmidhuber's two-level history
                       compressor, two cells of preset ``cell``).  Default 'sequence'.
    logistic_loss      what ``logistic_output`` units are trained on: 'squared' (the task's
                       squared error, the paper's) or 'cross_entropy' (each target in [0, 1] read
                       as a probability: the gradient at a unit's net input is y - t, where the
                       squared error's is 2 (y - t) f'(net), which all but vanishes where y nears 0
                       or 1); reduced as ``loss_reduction`` says.  The task's loss, criteria and
                       stopping rule stay as they are.  Default 'squared'.
    loss_reduction     'mean' (the task's loss) or 'sequence_sum' (per sequence the sum over its
                       scored steps, the batch's mean of those: what the 1997 paper's online
                       learner descends).  Default 'mean'.
    cell_joins_at_plateau
                       the net is grown as Hochreiter & Schmidhuber grew their experiment 2 nets
                       ("memory cell and input gate are added once the error has stopped
                       decreasing"): training starts with the outputs fed by the inputs only
                       (needs ``input_to_output``; the cell is neither seen nor trained), and the
                       cell joins once the training loss has stopped decreasing -- read here as:
                       its mean over the last N steps is less than 1 % below its mean over the N
                       steps before, checked every N steps, N = this field.  The step it joined
                       at is the run's ``cell_joined_step``.  None: the cell is there from the
                       start.  Default None.

    Online learning as in Hochreiter & Schmidhuber (1997) -- weights updated after every
    sequence, by plain gradient descent -- is ``batch_size=1, optimizer='sgd', momentum=0.0,
    grad_clip=None`` (with ``loss_reduction='sequence_sum'`` where the error is summed over the
    steps of a sequence).
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
    max_loss_ratio: float | None = later_field(1e6, since="0.2.0")
    orthogonal_lr: float | None = later_field(None, since="0.3.0")
    cell_params: Mapping[str, Any] = later_field(TaskParams(), since="0.3.0")
    input_to_output: bool = later_field(False, since="0.3.0")
    logistic_output: bool = later_field(False, since="0.3.0")
    readout_init_range: float | None = later_field(None, since="0.3.0")
    model: str = later_field("sequence", since="0.3.0")
    loss_reduction: str = later_field("mean", since="0.3.0")
    logistic_loss: str = later_field("squared", since="0.3.0")
    cell_joins_at_plateau: int | None = later_field(None, since="0.3.0")

    def __post_init__(self) -> None:
        plain_numbers(self)
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
        check_choice("model", self.model, MODELS)
        check_choice("loss_reduction", self.loss_reduction, LOSS_REDUCTIONS)
        check_choice("logistic_loss", self.logistic_loss, LOGISTIC_LOSSES)
        for name in ("input_to_output", "logistic_output"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid: must be True or False")
        if self.logistic_loss != "squared" and not self.logistic_output:
            raise ValueError(
                f"logistic_loss={self.logistic_loss!r} is invalid: it is the error of logistic output "
                "units and logistic_output=False; set logistic_output=True or leave logistic_loss='squared'"
            )
        check_int("seed", self.seed, 0, 2**63 - 1)
        self._check_growth()
        # Floats are stored as floats so that to_dict() is canonical (lr=1 and lr=1.0 are one run).
        positive = ("a finite number > 0", lambda v: v > 0)
        required = {"lr": positive, "momentum": ("a number in [0, 1)", lambda v: 0 <= v < 1)}
        optional = {
            "grad_clip": positive,
            "readout_init_range": positive,
            "max_loss_ratio": ("a finite number > 1", lambda v: v > 1),
            "orthogonal_lr": positive,
        }
        numbers = {name: _check_number(name, getattr(self, name), *rule) for name, rule in required.items()}
        for name, (allowed, ok) in optional.items():
            if (value := getattr(self, name)) is not None:
                numbers[name] = _check_number(name, value, f"None or {allowed}", ok)
        for name, value in numbers.items():
            object.__setattr__(self, name, value)
        self._check_device()
        task = self._build_task()
        if self.stopping == "hochreiter1997" and type(task).sequence_correct is Task.sequence_correct:
            raise ValueError(
                f"stopping={self.stopping!r} is invalid for task {self.task!r}: it needs a task with "
                "a per-sequence criterion (sequence_correct), e.g. adding, multiplication, temporal_order"
            )
        if self.logistic_output and task.kind != "regression":
            raise ValueError(
                f"logistic_output=True is invalid for task {self.task!r}: its outputs are the logits of "
                "a softmax; logistic outputs need a regression task"
            )
        object.__setattr__(self, "task_params", TaskParams(task.params()))
        object.__setattr__(self, "cell_params", self._check_cell_params(task))
        if self.orthogonal_lr is not None and not self._has_orthogonal_parameters(task):
            raise ValueError(
                f"orthogonal_lr={self.orthogonal_lr!r} is invalid for cell {self.cell!r}: it has no "
                "orthogonal or unitary parameters (e.g. exprnn, urnn); leave it None"
            )

    def _check_growth(self) -> None:
        """``cell_joins_at_plateau``: None, or a window of steps for a sequence model whose outputs
        see the inputs (before the cell joins they see nothing else)."""
        if self.cell_joins_at_plateau is None:
            return
        check_int("cell_joins_at_plateau", self.cell_joins_at_plateau, 1)
        if self.model != "sequence" or not self.input_to_output:
            raise ValueError(
                f"cell_joins_at_plateau={self.cell_joins_at_plateau!r} is invalid: a growing net needs "
                f"model='sequence' and input_to_output=True, not model={self.model!r}, "
                f"input_to_output={self.input_to_output!r} (until the cell joins, the outputs see the "
                "inputs only)"
            )

    def _has_orthogonal_parameters(self, task: Task) -> bool:
        with torch.random.fork_rng(devices=[]):  # building draws weights: leave the caller's RNG alone
            cell = make_cell(
                self.cell,
                task.input_size,
                self.hidden_size,
                memory_lag=task.memory_lag,
                params=self.cell_params,
            )
        return bool(cell.orthogonal_parameters())

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
        params = {key: plain_number(value) for key, value in self.task_params.items()}
        for key, value in params.items():
            if not isinstance(value, int | float | str | bool):
                raise ValueError(
                    f"task_params={params!r} is invalid: {key}={value!r} must be an int, float, str or bool"
                )
        try:
            return tasks.make_task(self.task, **params)
        except (TypeError, ValueError) as error:  # TypeError: a task's own check met an odd type
            raise ValueError(f"task_params={params!r} is invalid: task {self.task!r}: {error}") from None

    def _check_cell_params(self, task: Task) -> TaskParams:
        """``cell_params`` (lists stored as tuples, so the config stays hashable), checked by
        building the cell on the meta device: the preset's own validation, no memory."""
        if not isinstance(self.cell_params, Mapping):
            raise ValueError(f"cell_params={self.cell_params!r} is invalid: must be a dict of cell options")
        params = {}
        for key, value in self.cell_params.items():
            scalar = (int, float, str, bool)
            is_list = isinstance(value, list | tuple) and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in value
            )
            if not (isinstance(key, str) and (isinstance(value, scalar) or is_list)):
                raise ValueError(
                    f"cell_params={dict(self.cell_params)!r} is invalid: {key}={value!r} must be an int, "
                    "float, str, bool or a list of numbers"
                )
            params[key] = tuple(value) if is_list else value
        if params:
            with torch.device("meta"):
                try:
                    lag = task.memory_lag
                    make_cell(self.cell, task.input_size, self.hidden_size, memory_lag=lag, params=params)
                except ValueError as error:
                    raise ValueError(f"cell_params={dict(self.cell_params)!r} is invalid: {error}") from None
        return TaskParams(params)

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
        cell_params = {k: list(v) if isinstance(v, tuple) else v for k, v in self.cell_params.items()}
        return {**values, "task_params": dict(self.task_params), "cell_params": cell_params}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Inverse of ``to_dict``; fields left out take their defaults (a dict written before a
        field existed loads with that field's default)."""
        return cls(**_from_dict(cls, values))


# -- probing ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeConfig:
    """What the probe (``seqmem.analysis.make_probe``) records, when, and on how much data.

    quantities           a subset of PROBE_QUANTITIES ('grad_norm' includes cell_grad_norm);
                         by default all but 'connectivity' (L^2/2 backward steps per output)
    every_n_evals        probe every n-th evaluation during training (0: only at 'init' and
                         'final', which are always probed)
    batch_size           sequences of the held-out batch (its first ones) for gradients and gates
    jacobian_batch_size  sequences for the Jacobian products, forget-gate products, the Lyapunov
                         spectrum and the connectivity (costly)
    lyapunov_k           leading exponents to compute (capped at the state size)
    reference            'last' (the task's reference step) or 'all' (the full loss)
    dtype                'float64' (default: follows the decay far past float32's underflow) or
                         'float32' (what training sees)
    """

    quantities: tuple[str, ...] = DEFAULT_PROBE_QUANTITIES
    every_n_evals: int = 1
    batch_size: int = 64
    jacobian_batch_size: int = 8
    lyapunov_k: int = 16
    reference: str = "last"
    dtype: str = "float64"

    def __post_init__(self) -> None:
        plain_numbers(self)
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
        check_choice("dtype", self.dtype, tuple(PROBE_DTYPES))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe and canonical (lists, not tuples)."""
        return dataclasses.asdict(self) | {"quantities": list(self.quantities)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ProbeConfig:
        return cls(**_from_dict(cls, values))


# -- one run ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunConfig:
    """One run: the training config plus what to probe while training (None: nothing)."""

    train: TrainConfig
    probe: ProbeConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"train": self.train.to_dict(), "probe": None if self.probe is None else self.probe.to_dict()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunConfig:
        values = _from_dict(cls, values)
        probe = values.get("probe")
        return cls(
            TrainConfig.from_dict(values["train"]), None if probe is None else ProbeConfig.from_dict(probe)
        )

    def canonical_json(self) -> str:
        """The identity of the run as text: sorted keys, no spaces, later fields at their default left out."""
        probe = None if self.probe is None else identity_dict(self.probe)
        return json.dumps(
            {"train": identity_dict(self.train), "probe": probe}, sort_keys=True, separators=(",", ":")
        )

    @property
    def run_id(self) -> str:
        # sha256 of the canonical JSON, not hash(): the same in every process and Python version
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()[:12]
