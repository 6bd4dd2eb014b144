"""A study's grid: ``Study`` names base TrainConfig fields, axes whose product is the grid, presets,
per-value overrides and excluded combinations, and expands them to validated ``RunConfig``s (see
``seqmem.sweep``)."""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from seqmem.config import ProbeConfig, RunConfig, TrainConfig

__all__ = ["Study", "JoinedStudy"]

TASK_AXIS = "task"
TASK_PARAM = "task_params."
PRESET_KEYS = ("base", "axes", "overrides", "exclude", "probe")
TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def _check_key(where: str, key: object) -> None:
    param = isinstance(key, str) and key.startswith(TASK_PARAM) and len(key) > len(TASK_PARAM)
    ok = param or (isinstance(key, str) and key in TRAIN_FIELDS)
    if not ok:
        raise ValueError(
            f"{where} key {key!r} is invalid: must be a TrainConfig field "
            f"({', '.join(TRAIN_FIELDS)}) or 'task_params.<name>'"
        )


def _check_dict(where: str, value: object) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{where}={value!r} is invalid: must be a dict")
    return value


def _check_list(where: str, value: object) -> list:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{where}={value!r} is invalid: must be a list of {{axis: value}} dicts")
    return list(value)


def _set(config: dict, key: str, value: Any) -> None:
    """Set a TrainConfig field, or one task parameter for 'task_params.<name>'."""
    if key.startswith(TASK_PARAM):
        config["task_params"] = {**config.get("task_params", {}), key[len(TASK_PARAM) :]: value}
    else:
        config[key] = dict(value) if key == "task_params" else value


def _task_value(value: object) -> tuple[str, dict | None]:
    """A value of the 'task' axis as (task name, its task_params or None to keep the base's)."""
    if isinstance(value, str):
        return value, None
    if isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[1], dict):
        return value[0], dict(value[1])
    if isinstance(value, dict) and "task" in value and set(value) <= {"task", "task_params"}:
        return value["task"], dict(value.get("task_params", {}))
    raise ValueError(
        f"axes['task'] value {value!r} is invalid: must be a task name, a (name, params) "
        "pair or a dict with keys 'task' and 'task_params'"
    )


def _override_key(axis: str, value: object) -> object:
    return _task_value(value)[0] if axis == TASK_AXIS else value


@dataclass(frozen=True)
class Study:
    """A named grid of runs.

    name:      folder name of the study (letters, digits, '_', '-', '.')
    base:      TrainConfig fields shared by every run (keys as in the module docstring)
    axes:      axis -> list of values; the grid is their product, in declaration order
    presets:   preset name -> {"base": {...}, "axes": {...}, "overrides": {...}, "exclude": [...],
               "probe": ...}, each part optional, merged over the study's own (axes replaced
               whole, per axis; exclusions added to the study's)
    overrides: axis -> {axis value -> {key: value}}, applied to runs with that value
               (e.g. {"cell": {"lstm": {"hidden_size": 64}}}); a key may not also be an axis
    exclude:   combinations left out of the product, each {axis: value, ...}: a point that has
               all of them is dropped (e.g. [{"cell": "urnn", "task": "adding"}]; a task by name)
    probe:     ProbeConfig recorded during every run, or None
    literature: keys of the papers the study reproduces (e.g. "hochreiter1997", "arjovsky2016"),
               written to study.json, where the report looks up its literature tables; they are
               no part of any run's identity
    Every preset's grid is built (and so validated) at construction.
    """

    name: str
    base: dict
    axes: dict = field(default_factory=dict)
    presets: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)
    exclude: tuple[dict, ...] = ()
    probe: ProbeConfig | None = None
    literature: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.valid_name(self.name):
            raise ValueError(
                f"name={self.name!r} is invalid: must be a folder name of letters, digits, '_', '-', '.'"
            )
        keys = self.literature
        if isinstance(keys, str) or not isinstance(keys, tuple | list):
            keys = [keys]
        if not all(isinstance(key, str) and re.fullmatch(r"[a-z][a-z0-9_]*", key) for key in keys):
            raise ValueError(
                f"literature={self.literature!r} is invalid: must be a tuple of paper keys "
                "(lower-case letters, digits, '_'), e.g. ('hochreiter1997',)"
            )
        object.__setattr__(self, "literature", tuple(keys))
        for preset_name, changes in _check_dict("presets", self.presets).items():
            for key in _check_dict(f"presets[{preset_name!r}]", changes):
                if key not in PRESET_KEYS:
                    raise ValueError(
                        f"presets[{preset_name!r}] key {key!r} is invalid: must be one of "
                        f"{', '.join(map(repr, PRESET_KEYS))}"
                    )
        for preset_name in self.presets or [None]:
            self.grid(preset_name)

    @staticmethod
    def valid_name(name: object) -> bool:
        """Whether ``name`` can name a study (and its folder)."""
        return isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) is not None

    def resolve(self, preset: str | None) -> tuple[dict, dict, dict, list[dict], ProbeConfig | None]:
        """(base, axes, overrides, exclude, probe) with the preset's changes applied, keys validated."""
        if preset is not None and preset not in self.presets:
            raise ValueError(
                f"preset={preset!r} is invalid: must be one of "
                f"{', '.join(map(repr, self.presets)) or 'None (the study has no presets)'}"
            )
        changes = self.presets[preset] if preset is not None else {}
        base: dict = {}
        for where, fields in (("base", self.base), (f"presets[{preset!r}]['base']", changes.get("base", {}))):
            for key, value in _check_dict(where, fields).items():
                _check_key(where, key)
                _set(base, key, value)
        axes = {**_check_dict("axes", self.axes), **_check_dict("preset axes", changes.get("axes", {}))}
        for axis, values in axes.items():
            _check_key("axes", axis)
            if not isinstance(values, (list, tuple)) or not values:
                raise ValueError(f"axes[{axis!r}]={values!r} is invalid: must be a non-empty list of values")
        extra = _check_dict("preset overrides", changes.get("overrides", {}))
        overrides = {
            axis: {**_check_dict("overrides", self.overrides).get(axis, {}), **extra.get(axis, {})}
            for axis in {**self.overrides, **extra}
        }
        for axis, by_value in overrides.items():
            if axis not in axes:
                raise ValueError(f"overrides[{axis!r}] is invalid: must name an axis ({', '.join(axes)})")
            known = [_override_key(axis, v) for v in axes[axis]]
            for value, fields in by_value.items():
                if value not in known:
                    raise ValueError(
                        f"overrides[{axis!r}][{value!r}] is invalid: must be a value of the "
                        f"axis ({', '.join(map(repr, known))})"
                    )
                for key in _check_dict(f"overrides[{axis!r}][{value!r}]", fields):
                    _check_key(f"overrides[{axis!r}][{value!r}]", key)
                    if key in axes:
                        raise ValueError(
                            f"overrides[{axis!r}][{value!r}] key {key!r} is invalid: it is an "
                            "axis too, so which value wins would be ambiguous"
                        )
        exclude = [
            *_check_list("exclude", self.exclude),
            *_check_list("preset exclude", changes.get("exclude", [])),
        ]
        for combination in exclude:
            for axis, value in _check_dict("exclude entry", combination).items():
                if axis not in axes:
                    raise ValueError(
                        f"exclude entry {combination!r} is invalid: {axis!r} is not an axis "
                        f"({', '.join(axes)})"
                    )
                known = [_override_key(axis, v) for v in axes[axis]]
                if value not in known:
                    raise ValueError(
                        f"exclude entry {combination!r} is invalid: {value!r} is not a value of axis "
                        f"{axis!r} ({', '.join(map(repr, known))})"
                    )
        return base, axes, overrides, exclude, changes.get("probe", self.probe)

    def grid(self, preset: str | None = "quick") -> list[RunConfig]:
        """Every run of the preset, in axis order; raises a one-line ValueError on any bad field."""
        base, axes, overrides, exclude, probe = self.resolve(preset)
        configs: dict[str, tuple[dict, RunConfig]] = {}
        for values in itertools.product(*axes.values()):
            point = dict(zip(axes, values, strict=True))
            if any(all(_override_key(a, point[a]) == v for a, v in c.items()) for c in exclude):
                continue
            fields = {**base, "task_params": dict(base.get("task_params", {}))}
            if TASK_AXIS in point:  # first: it may replace the task parameters the others refine
                fields["task"], params = _task_value(point[TASK_AXIS])
                fields["task_params"] = fields["task_params"] if params is None else params
            for axis, value in point.items():
                if axis != TASK_AXIS:
                    _set(fields, axis, value)
            for axis, value in point.items():
                for key, override in overrides.get(axis, {}).get(_override_key(axis, value), {}).items():
                    _set(fields, key, override)
            try:
                train_config = TrainConfig(**fields)  # validates every field, task_params included
            except (TypeError, ValueError) as err:
                raise ValueError(f"study {self.name!r} preset {preset!r} run {point}: {err}") from None
            run = RunConfig(train_config, probe)
            if run.run_id in configs:
                raise ValueError(
                    f"study {self.name!r} preset {preset!r}: runs {configs[run.run_id][0]} and "
                    f"{point} are the same config; remove the duplicate axis value"
                )
            configs[run.run_id] = (point, run)
        if not configs:
            raise ValueError(f"study {self.name!r} preset {preset!r}: exclude={exclude!r} leaves no run")
        return [run for _, run in configs.values()]

    def info(self, preset: str | None) -> dict:
        """JSON-safe description for study.json: what was asked for, and the grid it expanded to."""
        base, axes, overrides, exclude, probe = self.resolve(preset)
        return {
            "name": self.name,
            "preset": preset,
            "presets": list(self.presets),
            "base": base,
            "axes": {axis: list(values) for axis, values in axes.items()},
            "overrides": {axis: {str(v): f for v, f in by.items()} for axis, by in overrides.items()},
            "exclude": [dict(combination) for combination in exclude],
            "probe": None if probe is None else probe.to_dict(),
            "literature": list(self.literature),
            "grid": [{"run_id": run.run_id, **run.to_dict()} for run in self.grid(preset)],
        }


@dataclass(frozen=True)
class JoinedStudy(Study):
    """A study whose grid is the grids of its ``parts``, joined: each part's preset of that name
    (a part without it adds nothing).  For settings that one product grid cannot say, such as a
    hidden size per cell that also differs per task, or a net that differs per experiment.  Its
    own ``base`` and ``axes`` stay empty; ``presets`` names the presets it offers."""

    parts: tuple[Study, ...] = ()

    def grid(self, preset: str | None = "quick") -> list[RunConfig]:
        self.resolve(preset)  # an unknown preset is a one-line ValueError
        runs = [run for part in self.parts if preset in part.presets for run in part.grid(preset)]
        ids = [run.run_id for run in runs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"study {self.name!r} preset {preset!r}: two parts share a run")
        return runs
