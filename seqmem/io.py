"""Files that are never half-written: atomic writes, JSON, and checkpoints.

Every file seqmem writes goes through ``atomic_write`` (a temporary file beside the target, made
durable, then renamed over it), so a crash or a kill leaves either the old file or the new one.
A checkpoint holds tensors and plain data only, and is loaded with ``torch.load(...,
weights_only=True)``: opening a checkpoint from elsewhere never runs pickled code.

Errors name their file: a write that fails (a full disk, a read-only folder) raises an OSError
carrying the target path, and unreadable JSON a ValueError naming it.  ``check_writable``
tries a folder before any long work is done for it, and ``file_digest`` fingerprints a file
(size and SHA-256) so that a reader can tell an intact file from a damaged one.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "atomic_write",
    "write_json",
    "read_json",
    "check_writable",
    "file_digest",
    "save_checkpoint",
    "load_checkpoint",
]

CHECKPOINT_KEYS = ("state_dict", "config")


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call ``write(temp_path)`` on a temporary file beside ``path`` and rename it over ``path``,
    so a crash or kill never leaves a half-written file under the final name.  An OSError
    (no space left, read-only folder ...) is raised with ``path`` as its file name."""
    path = Path(path)
    # a unique name that ``write`` creates itself, so the file gets the usual permissions
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(temp)
        with open(temp, "rb+") as handle:  # on disk before the rename, so power loss can't tear it
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as error:
        temp.unlink(missing_ok=True)
        if error.errno is None:
            raise
        # a failed write() names no file; say which one could not be written
        raise OSError(error.errno, error.strerror, str(path)) from error
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
    """The JSON in ``path``; a ValueError naming the file if it is not valid JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path} is not valid JSON ({error})") from None


def check_writable(folder: str | os.PathLike[str]) -> Path:
    """Create ``folder`` (and its parents) and write and delete a file in it, so that a missing
    permission or a read-only or full disk shows before any work is done for it; an OSError
    naming the folder otherwise."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    probe = atomic_write(folder / ".seqmem-write-check", lambda temp: temp.write_bytes(b"seqmem"))
    probe.unlink()
    return folder


def file_digest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"bytes": size, "sha256": hex digest}`` of a file: what a reader compares to tell an
    intact file from a truncated or altered one."""
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return {"bytes": Path(path).stat().st_size, "sha256": digest}


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
