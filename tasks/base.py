"""The task contract every generator in ``tasks/`` follows.

A task is a frozen, validated dataclass.  ``sample`` draws a whole batch with
vectorised tensor ops (no Python loop over the batch) from a ``torch.Generator``
so the same seed always gives the same batch.  Everything is batch-first.

Fields given as numpy scalars (``np.int64(10)``) are stored as the Python numbers
they hold, and ``sample`` refuses a batch that cannot fit in memory (``check_memory``:
the bound is the memory available now, or ``$SEQMEM_MAX_MEMORY``) before allocating it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch

__all__ = [
    "Batch",
    "Task",
    "check_int",
    "check_choice",
    "choice_field",
    "check_fields",
    "check_memory",
    "memory_limit",
    "plain_number",
    "plain_numbers",
    "close_to_one_hot",
    "step_scores",
    "render_columns",
]

MEMORY_ENV = "SEQMEM_MAX_MEMORY"
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


@dataclass(frozen=True)
class Batch:
    """One batch of sequences.

    inputs:  float32 ``(B, L, input_size)``
    targets: long ``(B, L)`` class indices (classification) or float32 ``(B, L)``
             values (regression); entries where ``mask`` is False are ignored.
    mask:    bool ``(B, L)``, True where the loss applies.  Padding of
             variable-length sequences is always False.
    lengths: long ``(B,)``, the true length of every sequence (``L`` when fixed).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.inputs.shape[0]

    @property
    def seq_len(self) -> int:
        return self.inputs.shape[1]

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(t.to(device) for t in (self.inputs, self.targets, self.mask, self.lengths)))

    def with_mask(self, mask: torch.Tensor) -> Batch:
        """The same batch with the loss restricted to ``mask`` (used by the analysis)."""
        return dataclasses.replace(self, mask=mask & self.mask)


def check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> None:
    """Raise a one-line ValueError unless ``value`` is an int in [minimum, maximum]."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        allowed = f"an integer >= {minimum}" if maximum is None else f"an integer in [{minimum}, {maximum}]"
        raise ValueError(f"{name}={value!r} is invalid: must be {allowed}")


def plain_number(value: object) -> object:
    """A numpy scalar as the Python int, float or bool it holds; anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def plain_numbers(instance: object) -> None:
    """Replace the numpy scalar fields of a (frozen) dataclass instance by the Python numbers
    they hold, so ``np.int64(10)`` is accepted wherever ``10`` is and what is stored is plain
    data (JSON, run ids, ``repr``)."""
    for f in dataclasses.fields(instance):
        object.__setattr__(instance, f.name, plain_number(getattr(instance, f.name)))


def _format_bytes(n: float) -> str:
    unit = next((u for u in "TGMK" if n >= _UNITS[u.lower()]), "")
    return f"{n / _UNITS[unit.lower()]:.1f} {unit}iB" if unit else f"{n:.0f} bytes"


def _available_memory() -> float:
    """Bytes this process can still allocate: Linux's MemAvailable, capped by a cgroup v2 memory
    limit; elsewhere the physical memory; inf where neither is known."""
    try:
        meminfo = Path("/proc/meminfo").read_text()
    except OSError:  # not Linux
        if not hasattr(os, "sysconf"):
            return math.inf
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    available = int(re.search(r"^MemAvailable:\s+(\d+) kB", meminfo, re.MULTILINE).group(1)) * 1024
    return min(available, _cgroup_headroom())


def _cgroup_headroom() -> float:
    """What a cgroup v2 memory limit (a container's, a SLURM job's) leaves free; inf without one."""
    try:
        group = Path("/proc/self/cgroup").read_text().split("0::", 1)[1].splitlines()[0]
        folder = Path("/sys/fs/cgroup") / group.lstrip("/")
        limit = (folder / "memory.max").read_text().strip()
        return math.inf if limit == "max" else int(limit) - int((folder / "memory.current").read_text())
    except (OSError, IndexError, ValueError):  # no cgroup v2, or no memory controller
        return math.inf


def memory_limit() -> float:
    """The memory bound, in bytes, that ``check_memory`` holds allocations to: ``$SEQMEM_MAX_MEMORY``
    (bytes, or a number with a unit K, M, G or T, powers of 1024: '8G', '512MiB') if set,
    else the memory available on this machine now."""
    text = os.environ.get(MEMORY_ENV)
    if text is None:
        return _available_memory()
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if match is None:
        raise ValueError(
            f"{MEMORY_ENV}={text!r} is invalid: must be a number of bytes, optionally with a unit "
            "K, M, G or T (e.g. '8G')"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def check_memory(name: str, value: object, nbytes: float, what: str) -> None:
    """Raise a one-line ValueError naming ``name=value`` if ``what`` (its tensors, ``nbytes``
    bytes) would not fit under ``memory_limit()``; call it before allocating them."""
    if MEMORY_ENV not in os.environ and nbytes < 2**24:
        return  # 16 MiB fits on any machine that runs torch: spare the hot paths reading /proc
    limit = memory_limit()
    if nbytes > limit:
        source = (
            f"${MEMORY_ENV}" if MEMORY_ENV in os.environ else f"memory available; set ${MEMORY_ENV} to change"
        )
        raise ValueError(
            f"{name}={value!r} is invalid: {what} would need at least {_format_bytes(nbytes)}, more than the "
            f"memory bound of {_format_bytes(limit)} ({source})"
        )


def choice_field(default: str, choices: tuple[str, ...]) -> str:
    """A task field that holds one of ``choices``: declared with them, so that help texts can list
    them (``dataclasses.fields(cls)[i].metadata["choices"]``); ``__post_init__`` still checks it
    with ``check_choice``."""
    return dataclasses.field(default=default, metadata={"choices": tuple(choices)})


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """Raise a one-line ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}={value!r} is invalid: must be one of {', '.join(map(repr, choices))}")


def check_fields(
    owner: str, cls: type, given: Mapping[str, object], spell: Callable[[str], str] = str
) -> None:
    """Raise a one-line ValueError unless ``given`` (field name -> value) names only fields of
    the dataclass ``cls`` and every field it requires (one without a default).

    ``owner`` names whose fields they are in the message ("task 'copy'", "TrainConfig");
    ``spell`` writes a field name as the user typed it (e.g. as a command-line flag)."""
    fields = [f for f in dataclasses.fields(cls) if f.init]
    listing = ", ".join(spell(f.name) for f in fields)
    for name, value in given.items():
        if name not in {f.name for f in fields}:
            raise ValueError(
                f"{spell(name)}={value!r} is invalid: {owner} has no such field (its fields: {listing})"
            )
    for f in fields:
        if (
            f.name not in given
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ):
            raise ValueError(f"{spell(f.name)} is missing: {owner} requires it (its fields: {listing})")


def step_scores(correct: torch.Tensor, where: torch.Tensor) -> dict[str, float]:
    """Score the steps that matter: ``correct`` and ``where`` are bool ``(B, L)``.

    ``accuracy`` is the fraction of ``where`` steps that are correct and
    ``error_rate`` the fraction of sequences with at least one wrong step
    (the papers count wrong *sequences*)."""
    wrong = where & ~correct
    accuracy = 1.0 - float(wrong.sum()) / max(int(where.sum()), 1)
    return {"accuracy": accuracy, "error_rate": float(wrong.any(dim=1).float().mean())}


def close_to_one_hot(
    outputs: torch.Tensor, batch: Batch, where: torch.Tensor, tolerance: float
) -> torch.Tensor:
    """(B, L) bool: at the ``where`` steps, every softmax probability within ``tolerance`` of the
    one-hot target (True elsewhere)."""
    scored = outputs.detach()[where]
    one_hot = torch.nn.functional.one_hot(batch.targets[where], outputs.shape[-1])
    close = torch.ones_like(where)
    close[where] = (scored.softmax(dim=-1) - one_hot).abs().amax(dim=-1) < tolerance
    return close


def render_columns(rows: dict[str, list[str]], max_run: int = 3) -> str:
    """Lay out token rows as aligned columns, one line per row.

    Runs of more than ``max_run`` identical columns (the long blank stretches
    that make these tasks hard) are shown once with a ``×n`` count, so a
    1000-step example still fits on a screen."""
    columns = list(zip(*rows.values(), strict=True))
    cells: list[tuple[str, ...]] = []
    start = 0
    while start < len(columns):
        end = start
        while end < len(columns) and columns[end] == columns[start]:
            end += 1
        run = end - start
        if run > max_run:
            cells.append(tuple(f"{token}×{run}" if token else "" for token in columns[start]))
        else:
            cells.extend(columns[start:end])
        start = end
    widths = [max(map(len, cell)) for cell in cells]
    label_width = max(map(len, rows))
    lines = []
    for i, label in enumerate(rows):
        tokens = " ".join(cell[i].ljust(width) for cell, width in zip(cells, widths, strict=True))
        lines.append(f"{label:>{label_width}}: {tokens}".rstrip())
    return "\n".join(lines)


@dataclass(frozen=True)
class Task:
    """Base class of all tasks (subclasses are frozen dataclasses).

    Subclasses set ``name`` and ``kind`` and implement ``_sample``, ``input_size``,
    ``output_size``, ``baseline_loss``, ``is_solved``, ``memory_lag`` and
    ``describe``; they validate their fields in ``__post_init__`` with
    ``check_int``/``check_choice`` so a bad value fails at construction.
    """

    name: ClassVar[str]
    kind: ClassVar[Literal["classification", "regression"]]

    def __init_subclass__(cls, **kwargs: object) -> None:
        # Every task's own __post_init__ validates plain Python numbers: numpy scalars are
        # converted before it runs, whichever subclass defines it.
        super().__init_subclass__(**kwargs)
        validate = cls.__dict__.get("__post_init__")
        if validate is not None:

            @functools.wraps(validate)
            def __post_init__(self: Task) -> None:
                plain_numbers(self)
                validate(self)

            cls.__post_init__ = __post_init__

    def __post_init__(self) -> None:
        plain_numbers(self)

    # -- sizes ---------------------------------------------------------------
    @property
    def input_size(self) -> int:
        raise NotImplementedError

    @property
    def output_size(self) -> int:
        raise NotImplementedError

    @property
    def memory_lag(self) -> int:
        """The largest number of steps between an input the answer needs and the
        output that needs it (the T_max of chrono initialisation)."""
        raise NotImplementedError

    # -- sampling --------------------------------------------------------------
    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        batch_size = plain_number(batch_size)
        check_int("batch_size", batch_size, 1)
        check_memory("batch_size", batch_size, self.min_batch_bytes(batch_size), f"a batch of {self}")
        return self._sample(batch_size, generator)

    def min_batch_bytes(self, batch_size: int) -> int:
        """A lower bound on the bytes of ``sample(batch_size)``: every sequence has at least
        ``memory_lag + 1`` steps, each with float32 inputs, a target and a mask entry."""
        target_bytes = 8 if self.kind == "classification" else 4
        return batch_size * ((self.memory_lag + 1) * (4 * self.input_size + target_bytes + 1) + 8)

    def _sample(self, batch_size: int, generator: torch.Generator | None) -> Batch:
        raise NotImplementedError

    def reference_steps(self, batch: Batch) -> torch.Tensor:
        """Per sample, the output step whose answer depends on the oldest input:
        the step from which the analysis measures lags.  Default: the last step
        where the loss applies."""
        positions = torch.arange(batch.seq_len, device=batch.mask.device).expand_as(batch.mask)
        return torch.where(batch.mask, positions, -1).amax(dim=1)

    # -- scoring ---------------------------------------------------------------
    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Masked mean loss: cross-entropy over classes or squared error.
        ``outputs`` is ``(B, L, output_size)``."""
        per_step = self.per_step_loss(outputs, batch)
        mask = batch.mask.to(per_step.dtype)
        return (per_step * mask).sum() / mask.sum().clamp_min(1.0)

    def per_step_loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Unmasked loss at every step, ``(B, L)``."""
        if self.kind == "classification":
            return torch.nn.functional.cross_entropy(outputs.transpose(1, 2), batch.targets, reduction="none")
        return (outputs[..., 0] - batch.targets.to(outputs.dtype)) ** 2

    def metrics(self, outputs: torch.Tensor, batch: Batch) -> dict[str, float]:
        """At least ``loss`` and ``loss_ratio`` (loss / baseline_loss), plus the
        task's own measures (``accuracy``, ``abs_error``, ``error_rate`` …)."""
        with torch.no_grad():
            loss = float(self.loss(outputs, batch))
        return {"loss": loss, "loss_ratio": loss / self.baseline_loss()}

    def sequence_correct(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Per sequence, bool ``(B,)``: passes the task's per-sequence criterion, the one whose
        failures ``metrics``' ``error_rate`` counts (used by per-sequence stopping rules).
        Tasks without such a criterion raise NotImplementedError."""
        raise NotImplementedError(f"task {self.name!r} has no per-sequence correctness criterion")

    def baseline_loss(self) -> float:
        """Expected loss of the best memoryless strategy, in closed form."""
        raise NotImplementedError

    def is_solved(self, metrics: dict[str, float]) -> bool:
        """The success criterion of the task's source paper."""
        raise NotImplementedError

    # -- presentation ----------------------------------------------------------
    def params(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def describe(self, generator: torch.Generator | None = None) -> str:
        """One example rendered as readable text."""
        raise NotImplementedError

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{self.name}({args})"
