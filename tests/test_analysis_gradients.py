"""gradient_norms_by_lag and input_saliency_by_step against closed forms and brute force."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from analysis_checks import curve, double, padded, samples

from seqmem.analysis import gradient_norms_by_lag, input_saliency_by_step
from seqmem.cells import make_cell
from seqmem.model import SequenceModel
from tasks import AddingTask, CopyTask
from tasks.base import Batch

TASKS = {
    # variable lengths (masked padding) and one scored step per sequence
    "adding_hochreiter": AddingTask(length=20, variant="hochreiter1997"),
    # many scored steps; the reference is the first recall step, not the last scored one
    "copy": CopyTask(delay=6, n_copy=3, n_symbols=4),
}
PRESETS = ["rnn", "relu_rnn", "lstm", "lstm_no_forget", "gru"]


def small_model(preset, task, hidden_size=5):
    cell = make_cell(preset, task.input_size, hidden_size, memory_lag=task.memory_lag)
    return SequenceModel(cell, task.input_size, hidden_size, task.output_size).double()


def scored(batch, task, reference):
    """The definition: the loss steps and each sample's lag origin for ``reference``."""
    positions = torch.arange(batch.seq_len).expand_as(batch.mask)
    if reference == "all":
        return batch, torch.where(batch.mask, positions, -1).amax(dim=1)
    origin = task.reference_steps(batch)
    return batch.with_mask(positions == origin[:, None]), origin


def brute_force(model, batch, task, reference):
    """||dL_i/dh_t|| (and ||dL_i/dc_t||) by separate autograd.grad calls, one per t and state:
    the state after step t gets a fresh leaf, from which the cell and readout are unrolled
    again by hand.  dL/dc_t is the total derivative of the graph node c_t, so the LSTM's
    h_t = o_t * tanh(c_t) is recomputed from the leaf."""
    target, origin = scored(batch, task, reference)
    cell, (size, length) = model.cell, batch.inputs.shape[:2]
    with torch.no_grad():
        state, prefix, outputs_gate = cell.initial_state(size, dtype=torch.float64), [], []
        for t in range(length):
            state, gates = cell.step(batch.inputs[:, t], state)
            prefix.append(state)
            outputs_gate.append(gates.get("o"))
    norms = torch.zeros(len(prefix[0]), size, length, dtype=torch.float64)
    for index in range(len(prefix[0])):
        for t in range(length):
            leaf = prefix[t][index].clone().requires_grad_()
            state = list(prefix[t])
            state[index] = leaf
            if index == 1:
                state[0] = outputs_gate[t] * torch.tanh(leaf)
            hidden = [s[0] for s in prefix[:t]] + [state[0]]
            for s in range(t + 1, length):
                state, _ = cell.step(batch.inputs[:, s], tuple(state))
                hidden.append(state[0])
            outputs = model.readout(torch.stack(hidden, dim=1))
            loss = task.loss(outputs, target) * target.mask.sum()
            (grad,) = torch.autograd.grad(loss, leaf, allow_unused=True, materialize_grads=True)
            norms[index, :, t] = grad.norm(dim=-1)
    return norms.numpy(), origin.numpy()


@pytest.mark.parametrize("reference", ["last", "all"])
@pytest.mark.parametrize("task_name", list(TASKS))
@pytest.mark.parametrize("preset", PRESETS)
def test_one_backward_pass_equals_t_separate_gradients(preset, task_name, reference):
    task = TASKS[task_name]
    model = small_model(preset, task)
    batch = double(task.sample(3, torch.Generator().manual_seed(1)))
    frame = gradient_norms_by_lag(model, batch, task, reference, per_sample=True)
    expected, origin = brute_force(model, batch, task, reference)
    rows = samples(frame, "grad_norm")
    assert len(rows) == (origin + 1).clip(0).sum()  # rows exactly for t <= reference
    sample, t = rows["sample"].to_numpy(), rows["t"].to_numpy()
    assert (rows["lag"].to_numpy() == origin[sample] - t).all()
    np.testing.assert_allclose(rows["value"], expected[0, sample, t], rtol=1e-9, atol=1e-14)
    if expected.shape[0] == 2:  # LSTM: the cell-state path too
        cell_rows = samples(frame, "cell_grad_norm")
        assert (cell_rows[["sample", "t"]].to_numpy() == rows[["sample", "t"]].to_numpy()).all()
        np.testing.assert_allclose(cell_rows["value"], expected[1, sample, t], rtol=1e-9, atol=1e-14)
    else:
        assert set(frame["quantity"]) == {"grad_norm"}


@pytest.mark.parametrize("per_sample", [False, True])
def test_closed_form_scaled_orthogonal_rnn_at_rest(per_sample):
    # Zero biases, inputs and initial state keep h = 0, where tanh' = 1: dL/dh_{T-k} = dL/dh_T (0.9 Q)^k.
    length, hidden, size = 101, 16, 3
    task = AddingTask(length=length)
    cell = make_cell("rnn", task.input_size, hidden)
    model = SequenceModel(cell, task.input_size, hidden, 1).double()
    with torch.no_grad():
        cell.weight_hh.copy_(0.9 * torch.linalg.qr(torch.randn(hidden, hidden, dtype=torch.float64))[0])
        cell.bias_ih.zero_()
        cell.bias_hh.zero_()
    batch = task.sample(size, torch.Generator().manual_seed(0))
    batch = Batch(
        torch.zeros_like(batch.inputs, dtype=torch.float64), batch.targets, batch.mask, batch.lengths
    )
    frame = gradient_norms_by_lag(model, batch, task, per_sample=per_sample)
    rows = samples(frame, "grad_norm") if per_sample else frame[frame["stat"] == "mean"]
    # L_i = (b_out - y_i)^2 at the last step, so ||dL_i/dh_T|| = 2 |b_out - y_i| ||w_out||
    end = (
        (2 * (model.readout.bias - batch.targets[:, -1]).abs() * model.readout.weight.norm()).detach().numpy()
    )
    lag = rows["lag"].to_numpy(np.int64)
    expected = 0.9**lag * (end[rows["sample"].to_numpy(np.int64)] if per_sample else end.mean())
    assert lag.max() == length - 1
    np.testing.assert_allclose(rows["value"], expected, rtol=1e-5, atol=0)


def test_each_sample_gets_its_own_gradient_whatever_the_batch():
    # The loss is a per-sample sum: sample 2's gradients do not depend on its batch mates.
    task = TASKS["adding_hochreiter"]
    model = small_model("lstm", task)
    batch = double(task.sample(4, torch.Generator().manual_seed(3)))
    alone = Batch(*(x[2:3] for x in (batch.inputs, batch.targets, batch.mask, batch.lengths)))
    together = gradient_norms_by_lag(model, batch, task, per_sample=True)
    single = gradient_norms_by_lag(model, alone, task, per_sample=True)
    mine = together[together["sample"] == 2].reset_index(drop=True)
    assert mine["quantity"].tolist() == single["quantity"].tolist()
    assert mine["t"].tolist() == single["t"].tolist() and mine["lag"].tolist() == single["lag"].tolist()
    np.testing.assert_allclose(mine["value"], single["value"], rtol=1e-12)


def test_batch_statistics_per_lag():
    task = TASKS["adding_hochreiter"]
    model = small_model("gru", task)
    batch = double(task.sample(6, torch.Generator().manual_seed(4)))
    per_sample = samples(gradient_norms_by_lag(model, batch, task, per_sample=True), "grad_norm")
    frame = gradient_norms_by_lag(model, batch, task)
    grouped = per_sample.groupby("lag")["value"]
    assert curve(frame, "grad_norm").index.tolist() == sorted(grouped.groups)
    np.testing.assert_allclose(curve(frame, "grad_norm"), grouped.mean())
    np.testing.assert_allclose(curve(frame, "grad_norm", "median"), grouped.median())
    np.testing.assert_allclose(curve(frame, "grad_norm", "q10"), grouped.quantile(0.1))
    np.testing.assert_allclose(curve(frame, "grad_norm", "q90"), grouped.quantile(0.9))
    np.testing.assert_array_equal(frame.loc[frame["stat"] == "mean", "n"], grouped.size())


@pytest.mark.parametrize("preset", PRESETS)
def test_input_saliency_matches_autograd_through_the_fused_path(preset):
    task = TASKS["adding_hochreiter"]
    model = small_model(preset, task)
    batch = double(task.sample(3, torch.Generator().manual_seed(5)))
    frame = samples(input_saliency_by_step(model, batch, task, per_sample=True), "input_saliency")
    target, _ = scored(batch, task, "last")
    inputs = batch.inputs.clone().requires_grad_()
    loss = (
        task.loss(model(inputs), target) * target.mask.sum()
    )  # the fused torch.nn kernel where there is one
    (grad,) = torch.autograd.grad(loss, inputs)
    sample, t = frame["sample"].to_numpy(), frame["t"].to_numpy()
    expected = grad.norm(dim=-1).numpy()[sample, t]
    np.testing.assert_allclose(frame["value"], expected, rtol=1e-9, atol=1e-14)


def test_float64_measurement_of_a_float32_model():
    task = TASKS["copy"]
    model = small_model("rnn", task).float()
    batch = task.sample(3, torch.Generator().manual_seed(6))
    before = copy.deepcopy(model.state_dict())
    frame = samples(
        gradient_norms_by_lag(model, batch, task, per_sample=True, dtype=torch.float64), "grad_norm"
    )
    expected, _ = brute_force(copy.deepcopy(model).double(), double(batch), task, "last")
    expected = expected[0, frame["sample"].to_numpy(), frame["t"].to_numpy()]
    np.testing.assert_allclose(frame["value"], expected, rtol=1e-9, atol=1e-14)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.readout.weight.dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"reference": "middle"}, "reference"), ({"dtype": torch.float16}, "dtype")],
)
def test_invalid_arguments(kwargs, field):
    task = TASKS["copy"]
    with pytest.raises(ValueError, match=field):
        gradient_norms_by_lag(small_model("rnn", task), task.sample(2), task, **kwargs)


@pytest.mark.parametrize("function", [gradient_norms_by_lag, input_saliency_by_step])
@pytest.mark.parametrize("reference", ["last", "all"])
def test_padding_contributes_nothing(function, reference):
    # wild inputs in unscored padding after every sequence's end change no number
    task = TASKS["adding_hochreiter"]
    model = small_model("lstm", task)
    batch = double(task.sample(4, torch.Generator().manual_seed(7)))
    assert len(set(batch.lengths.tolist())) > 1  # sequences of different lengths
    pd.testing.assert_frame_equal(
        function(model, padded(batch, 5), task, reference), function(model, batch, task, reference)
    )
