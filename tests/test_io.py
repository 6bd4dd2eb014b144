"""seqmem/io.py: atomic writes leave the old file or the new one, JSON of numpy scalars,
checkpoints that load without running pickled code, errors that name their file, writability
checks and file digests."""

import errno
import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from seqmem.io import (
    atomic_write,
    check_writable,
    file_digest,
    load_checkpoint,
    read_json,
    save_checkpoint,
    write_json,
)


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "file.txt"
    path.write_text("old")

    def fail(temp):
        temp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, fail)
    assert path.read_text() == "old" and list(tmp_path.iterdir()) == [path]
    assert atomic_write(path, lambda temp: temp.write_text("new")) == path
    assert path.read_text() == "new" and list(tmp_path.iterdir()) == [path]


def test_json_with_numpy_and_torch_scalars_round_trips(tmp_path):
    data = {"b": np.float64(0.25), "a": [np.int64(3), torch.tensor(1.5)], "c": None}
    path = write_json(tmp_path / "data.json", data)
    assert read_json(path) == {"a": [3, 1.5], "b": 0.25, "c": None}
    assert list(json.loads(path.read_text())) == ["a", "b", "c"]  # sorted keys
    with pytest.raises(TypeError, match="set"):
        write_json(tmp_path / "bad.json", {"x": {1, 2}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.json"]


def test_checkpoint_round_trip(tmp_path):
    state = {"weight": torch.randn(3, 2), "bias": torch.zeros(3, dtype=torch.float64)}
    config = {"cell": "lstm", "task_params": {"length": 3}, "grad_clip": None}
    path = save_checkpoint(tmp_path / "checkpoint.pt", state, config)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    loaded_state, loaded_config = load_checkpoint(path)
    assert loaded_config == config
    assert loaded_state.keys() == state.keys()
    assert all(
        torch.equal(loaded_state[k], state[k]) and loaded_state[k].dtype == state[k].dtype for k in state
    )


def test_a_bare_state_dict_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "bare.pt"
    torch.save({"weight": torch.ones(2)}, path)
    with pytest.raises(ValueError, match=r"^path='.*bare\.pt' is invalid: not a seqmem checkpoint"):
        load_checkpoint(path)


class Payload:
    """Stands for any class a hostile file could make torch.load construct."""

    def __reduce__(self):
        return (print, ("unpickled!",))


def test_loading_never_unpickles_arbitrary_objects(tmp_path, capsys):
    path = tmp_path / "hostile.pt"
    torch.save({"state_dict": {}, "config": Payload()}, path)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_checkpoint(path)
    assert "unpickled!" not in capsys.readouterr().out


# -- errors name their file; folders are tried before work is done for them ------------------------


def test_a_failed_write_names_the_file_it_could_not_write(tmp_path):
    def disk_full(temp):
        temp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")  # what write() raises: no file name

    with pytest.raises(OSError) as caught:
        atomic_write(tmp_path / "metrics.parquet", disk_full)
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == str(tmp_path / "metrics.parquet")
    assert str(tmp_path / "metrics.parquet") in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_unreadable_json_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "study.json"
    path.write_text('{"name": "x", "grid": [')
    with pytest.raises(ValueError, match=rf"^{path} is not valid JSON \(") as caught:
        read_json(path)
    assert "\n" not in str(caught.value)


def test_check_writable_creates_the_folder_and_leaves_nothing(tmp_path):
    folder = tmp_path / "not" / "yet" / "there"
    assert check_writable(folder) == folder
    assert folder.is_dir() and list(folder.iterdir()) == []


@pytest.mark.parametrize("blocked", ["a file in the way", "a read-only file system"])
def test_check_writable_fails_naming_the_path(tmp_path, monkeypatch, blocked):
    if blocked == "a file in the way":
        (tmp_path / "file").write_text("x")
        folder = tmp_path / "file" / "out"
    else:
        folder = tmp_path / "out"

        def read_only(self, *args, **kwargs):
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr(Path, "write_bytes", read_only)
    with pytest.raises(OSError) as caught:
        check_writable(folder)
    assert str(tmp_path) in str(caught.value)


def test_file_digest_is_size_and_sha256(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 3)
    assert file_digest(path) == {"bytes": 768, "sha256": hashlib.sha256(bytes(range(256)) * 3).hexdigest()}
