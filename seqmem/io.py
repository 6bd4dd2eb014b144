"""Files that are never half-written: atomic writes, JSON, and checkpoints.

Every file seqmem writes goes through ``atomic_write`` (a temporary file beside the target, made
durable, then renamed over it), so a crash or a kill leaves either the old file or the new one.
A checkpoint holds tensors and plain data only, and is loaded with ``torch.load(...,
weights_only=True)``: opening a checkpoint from elsewhere never runs pickled code.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["atomic_write", "write_json", "read_json", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_KEYS = ("state_dict", "config")


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


def _json_default(value: Any) -> Any:
    # numpy / torch scalars in metrics dicts
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """``data`` as indented JSON with sorted keys (numpy and torch scalars as numbers), atomically."""
    text = json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n"
    return atomic_write(path, lambda temp: temp.write_text(text, encoding="utf-8"))


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def save_checkpoint(
    path: str | os.PathLike[str], state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]
) -> Path:
    """Save weights (on CPU) with the JSON-safe dict of the config that built them, atomically."""
    payload = {
        "state_dict": {name: tensor.detach().cpu() for name, tensor in state_dict.items()},
        "config": dict(config),
    }
    return atomic_write(path, lambda temp: torch.save(payload, temp))


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, config dict) saved by ``save_checkpoint``, on CPU, without unpickling code."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not (isinstance(payload, dict) and set(payload) == set(CHECKPOINT_KEYS)):
        raise ValueError(
            f"path={str(path)!r} is invalid: not a seqmem checkpoint (a dict of {', '.join(CHECKPOINT_KEYS)})"
        )
    return payload["state_dict"], payload["config"]
