"""connectivity (Madsen 2019) against torch.autograd.functional.jacobian of the fused forward pass,
sequence by sequence, each cut to its own length."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from analysis_checks import double, padded, samples

from seqmem.analysis import COLUMNS, connectivity, outputs
from seqmem.cells import make_cell
from seqmem.model import SequenceModel
from tasks import AddingTask, CopyTask

TASKS = {
    "adding_hochreiter": AddingTask(length=20, variant="hochreiter1997"),  # one output, lengths vary
    "copy": CopyTask(delay=3, n_copy=2, n_symbols=4),  # a classifier: several outputs per step
}


def small_model(preset, task, hidden_size=4):
    cell = make_cell(preset, task.input_size, hidden_size, memory_lag=task.memory_lag)
    return SequenceModel(cell, task.input_size, hidden_size, task.output_size).double()


def brute_force(model, batch):
    """Per sequence b: ||dy_t'/dx_t||_F (L_b, L_b), t' rows and t columns, by autograd's full
    Jacobian of the (fused) forward pass on the sequence alone."""
    result = []
    for b, length in enumerate(batch.lengths.tolist()):
        x = batch.inputs[b : b + 1, :length]
        full = torch.autograd.functional.jacobian(lambda x: model(x)[0], x)[:, :, 0]  # (L, O, L, I)
        result.append(torch.linalg.vector_norm(full, dim=(1, 3)).numpy())
    return result


@pytest.mark.parametrize("task_name", list(TASKS))
@pytest.mark.parametrize("preset", ["rnn", "lstm", "lstm_no_forget", "gru"])
def test_connectivity_is_the_norm_of_each_output_jacobian(preset, task_name):
    task = TASKS[task_name]
    model = small_model(preset, task)
    batch = double(task.sample(3, torch.Generator().manual_seed(1)))
    expected = brute_force(model, batch)
    rows = samples(connectivity(model, batch, task, per_sample=True), "connectivity")
    lengths = batch.lengths.tolist()
    assert len(rows) == sum(n * (n + 1) // 2 for n in lengths)  # t <= t' < length, nothing else
    output = (rows["t"] + rows["lag"]).to_numpy()
    assert (rows["lag"] >= 0).all() and (output < np.array(lengths)[rows["sample"]]).all()
    want = [expected[b][o, t] for b, o, t in zip(rows["sample"], output, rows["t"], strict=True)]
    np.testing.assert_allclose(rows["value"], want, rtol=1e-9, atol=1e-14)
    for b in range(len(lengths)):  # and above the diagonal the model is causal: exactly zero
        assert not np.triu(expected[b], k=1).any()


def test_batch_statistics_per_pair_over_the_sequences_that_reach_the_output_step():
    task = TASKS["adding_hochreiter"]
    model = small_model("gru", task)
    batch = double(task.sample(5, torch.Generator().manual_seed(2)))
    assert len(set(batch.lengths.tolist())) > 1
    per_sample = samples(connectivity(model, batch, task, per_sample=True), "connectivity")
    frame = connectivity(model, batch, task)
    assert tuple(frame.columns) == COLUMNS and frame[["k", "sample"]].isna().all().all()
    grouped = per_sample.groupby(["t", "lag"])["value"]
    for stat, reference in (
        ("mean", grouped.mean()),
        ("median", grouped.median()),
        ("q10", grouped.quantile(0.1)),
        ("q90", grouped.quantile(0.9)),
    ):
        rows = frame[frame["stat"] == stat].astype({"t": "int64", "lag": "int64"}).set_index(["t", "lag"])
        pd.testing.assert_index_equal(rows.index.sort_values(), reference.index)
        np.testing.assert_allclose(rows["value"].loc[reference.index], reference, rtol=1e-12)
        assert (rows["n"].loc[reference.index] == grouped.size()).all()


def test_padding_and_chunks_change_nothing(monkeypatch):
    task = TASKS["copy"]
    model = small_model("lstm", task)
    batch = double(task.sample(3, torch.Generator().manual_seed(3)))
    whole = connectivity(model, batch, task)
    pd.testing.assert_frame_equal(connectivity(model, padded(batch, 4), task), whole)
    monkeypatch.setattr(outputs, "CHUNK_ELEMENTS", 1)  # one output step per backward
    pd.testing.assert_frame_equal(connectivity(model, batch, task), whole)


def test_float64_measurement_leaves_a_float32_model_alone():
    task = TASKS["adding_hochreiter"]
    model = small_model("rnn", task).float()
    batch = task.sample(2, torch.Generator().manual_seed(4))
    before = copy.deepcopy(model.state_dict())
    frame = connectivity(model, batch, task, dtype=torch.float64)
    pd.testing.assert_frame_equal(frame, connectivity(copy.deepcopy(model).double(), double(batch), task))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.readout.weight.dtype == torch.float32 and all(p.grad is None for p in model.parameters())
