"""Sizes and inputs at the edges, across the layers that build and train: a model or batch that
cannot fit in memory is refused with one line naming the field before anything is allocated,
numpy scalars are accepted wherever Python numbers are, and a task passed by name is refused."""

from __future__ import annotations

import numpy as np
import pytest

from seqmem.cells import make_cell
from seqmem.config import ProbeConfig, RunConfig, TrainConfig
from seqmem.model import make_model
from seqmem.sweep import Study
from seqmem.train import train
from tasks.base import MEMORY_ENV

TINY = {"task": "adding", "task_params": {"length": 12}, "cell": "gru", "hidden_size": 8, "max_steps": 2}


@pytest.mark.parametrize("preset", ["rnn", "lstm", "gru"])
def test_a_cell_whose_weights_cannot_fit_is_refused_before_allocating(preset):
    # hidden 10^6: 4 to 16 TB of recurrent weights
    with pytest.raises(
        ValueError, match=r"^hidden_size=1000000 is invalid: the weights of a \w+Cell would need"
    ):
        make_cell(preset, 2, 1_000_000)


def test_the_weight_estimate_is_what_the_cell_allocates(monkeypatch):
    cell = make_cell("lstm", 3, 5)
    allocated = sum(p.numel() * p.element_size() for p in cell.parameters())
    monkeypatch.setenv(MEMORY_ENV, str(allocated))
    make_cell("lstm", 3, 5)
    monkeypatch.setenv(MEMORY_ENV, str(allocated - 1))
    with pytest.raises(ValueError, match="hidden_size=5"):
        make_cell("lstm", 3, 5)


@pytest.mark.parametrize("field", ["eval_batch_size", "batch_size"])
def test_training_refuses_a_batch_whose_forward_pass_cannot_fit(field):
    config = TrainConfig(**{**TINY, field: 10**10})  # ~6 TB of states: more than any machine has
    with pytest.raises(ValueError, match=rf"^{field}=10000000000 is invalid: a forward pass over") as caught:
        train(config, progress=False)
    assert "\n" not in str(caught.value)


def test_make_model_refuses_a_task_name():
    with pytest.raises(ValueError, match=r"^task='adding' is invalid: must be a tasks.Task"):
        make_model("rnn", "adding", hidden_size=8)


def test_numpy_scalars_make_the_same_configs_and_run_ids():
    plain = TrainConfig(**TINY, seed=1, lr=0.5)
    numpy = TrainConfig(
        **{**TINY, "hidden_size": np.int64(8), "task_params": {"length": np.int32(12)}},
        seed=np.int64(1),
        lr=np.float32(0.5),
    )
    assert numpy == plain and RunConfig(numpy).run_id == RunConfig(plain).run_id
    assert type(numpy.hidden_size) is int and type(numpy.task_params["length"]) is int
    assert type(numpy.lr) is float
    assert ProbeConfig(batch_size=np.int64(4), lyapunov_k=np.int16(2)) == ProbeConfig(
        batch_size=4, lyapunov_k=2
    )


def test_a_study_axis_of_numpy_values_is_the_axis_of_python_values(tmp_path):
    base = {k: v for k, v in TINY.items() if k != "task_params"} | {"task_params.length": 12}
    numpy = Study(
        name="np", base=base, axes={"seed": list(np.arange(2)), "task_params.length": [np.int64(9)]}
    )
    plain = Study(name="np", base=base, axes={"seed": [0, 1], "task_params.length": [9]})
    assert [r.run_id for r in numpy.grid(None)] == [r.run_id for r in plain.grid(None)]
    assert numpy.info(None)["grid"] == plain.info(None)["grid"]
