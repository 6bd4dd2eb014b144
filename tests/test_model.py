"""SequenceModel against torch.nn's RNN/LSTM/GRU, fused vs unrolled, and the per-step states."""

import math
from dataclasses import dataclass

import pytest
import torch

from seqmem.cells import cell_names, make_cell
from seqmem.model import SequenceModel, make_model
from tasks import make_task

# the fast path is checked against torch.nn where torch.nn has the cell; the expRNN's and uRNN's
# (BPTT by hand) against their plain recurrence in tests/test_cells_template.py, the 1997 LSTM
# against the paper's equations in tests/test_cells_lstm1997.py
WITH_TWIN = [p for p in cell_names() if p not in ("lstm_no_forget", "exprnn", "urnn", "lstm1997")]
FUSABLE = [p for p in cell_names() if p != "lstm_no_forget"]
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12}


@dataclass(frozen=True)
class StandInTask:
    """Just the sizes ``make_model`` reads from a task."""

    input_size: int = 3
    output_size: int = 2
    memory_lag: int = 30


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


def build(preset, dtype=torch.float64, input_size=3, hidden_size=6, output_size=2, fused=True):
    cell = make_cell(preset, input_size, hidden_size, memory_lag=30)
    return SequenceModel(cell, input_size, hidden_size, output_size, fused=fused).to(dtype)


def loss_and_grads(model, inputs, weights):
    outputs = model(inputs)
    loss = (outputs * weights).sum()
    return outputs, torch.autograd.grad(loss, [inputs, *model.parameters()])


def torch_nn_twin(model):
    """torch.nn.RNN/LSTM/GRU + Linear holding copies of ``model``'s weights."""
    cell = model.cell
    if type(cell).__name__ == "LSTMCell":
        rnn = torch.nn.LSTM(cell.input_size, cell.hidden_size, batch_first=True)
    elif type(cell).__name__ == "GRUCell":
        rnn = torch.nn.GRU(cell.input_size, cell.hidden_size, batch_first=True)
    else:
        nonlinearity = cell.nonlinearity
        rnn = torch.nn.RNN(cell.input_size, cell.hidden_size, nonlinearity=nonlinearity, batch_first=True)
    rnn.load_state_dict({f"{name}_l0": p for name, p in cell.state_dict().items()})
    readout = torch.nn.Linear(model.hidden_size, model.output_size)
    readout.load_state_dict(model.readout.state_dict())
    rnn, readout = rnn.to(cell.weight_hh.dtype), readout.to(cell.weight_hh.dtype)
    return lambda x: readout(rnn(x)[0]), [*rnn.parameters(), *readout.parameters()]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("preset", WITH_TWIN)
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unrolled"])
def test_model_matches_torch_nn(preset, fused, dtype):
    model = build(preset, dtype, fused=fused)
    twin, twin_params = torch_nn_twin(model)
    inputs = torch.randn(4, 9, 3, dtype=dtype, requires_grad=True)
    weights = torch.randn(4, 9, 2, dtype=dtype)

    outputs, grads = loss_and_grads(model, inputs, weights)
    expected = twin(inputs)
    expected_grads = torch.autograd.grad((expected * weights).sum(), [inputs, *twin_params])
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(outputs, expected, rtol=tol, atol=tol)
    for a, e in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(a, e, rtol=tol, atol=tol)


@pytest.mark.parametrize("preset", cell_names())
def test_fused_path_is_taken_exactly_where_torch_nn_has_the_math(preset, monkeypatch):
    model = build(preset)
    calls = []
    original = SequenceModel.unroll
    monkeypatch.setattr(SequenceModel, "unroll", lambda self, x: calls.append(1) or original(self, x))
    model(torch.randn(2, 4, 3, dtype=torch.float64))
    assert bool(calls) == (preset not in FUSABLE)
    model(torch.randn(2, 4, 3, dtype=torch.float64), return_states=True)
    assert calls  # per-step states always come from the unroll loop


def kicked_step(cell, x, state, kick_h, kick_c):
    """One step written out independently, with zero perturbations added to c_t (before h_t
    reads it) and to h_t, so that dL/dkick is the total derivative of L w.r.t. that state."""
    if not hasattr(cell, "forget_gate"):
        return (cell(x, state[0]) + kick_h,)
    h, c = state
    a = (x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh).split(cell.hidden_size, 1)
    f = torch.sigmoid(a[1]) if cell.forget_gate else 1.0
    c = f * c + torch.sigmoid(a[0]) * torch.tanh(a[2]) + kick_c
    return (torch.sigmoid(a[3]) * torch.tanh(c) + kick_h, c)


@pytest.mark.parametrize("preset", ["rnn", "lstm", "gru", "lstm_no_forget"])
def test_states_give_total_derivatives(preset):
    model = build(preset)
    batch, length = 3, 7
    inputs = torch.randn(batch, length, 3, dtype=torch.float64)
    weights = torch.randn(batch, length, 2, dtype=torch.float64)
    outputs, states = model(inputs, return_states=True)
    grads = torch.autograd.grad((outputs * weights).sum(), states.h + (states.c or []))

    state = model.cell.initial_state(batch, dtype=torch.float64)
    kicks_h = [torch.zeros(batch, 6, dtype=torch.float64, requires_grad=True) for _ in range(length)]
    kicks_c = [torch.zeros(batch, 6, dtype=torch.float64, requires_grad=True) for _ in range(length)]
    reference_outputs = []
    for t in range(length):
        state = kicked_step(model.cell, inputs[:, t], state, kicks_h[t], kicks_c[t])
        reference_outputs.append(model.readout(state[0]))
    reference_loss = (torch.stack(reference_outputs, dim=1) * weights).sum()
    expected = torch.autograd.grad(reference_loss, kicks_h + (kicks_c if states.c is not None else []))

    torch.testing.assert_close(outputs, torch.stack(reference_outputs, dim=1), rtol=1e-12, atol=1e-12)
    assert len(grads) == len(expected)
    for a, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("preset", ["lstm", "lstm_no_forget", "gru", "rnn"])
def test_states_and_gates_obey_the_cell_equations(preset):
    model = build(preset)
    _, states = model(torch.randn(2, 5, 3, dtype=torch.float64), return_states=True)
    assert len(states.h) == 5 and all(h.shape == (2, 6) for h in states.h)
    assert list(states.gates) == list(model.cell.gate_names)
    assert all(g.shape == (2, 5, 6) for g in states.gates.values())
    g = {name: gate.unbind(dim=1) for name, gate in states.gates.items()}
    zero = torch.zeros(2, 6, dtype=torch.float64)
    for t in range(5):
        h_prev = states.h[t - 1] if t else zero
        if preset.startswith("lstm"):
            c_prev = states.c[t - 1] if t else zero
            torch.testing.assert_close(states.c[t], g["f"][t] * c_prev + g["i"][t] * g["g"][t])
            torch.testing.assert_close(states.h[t], g["o"][t] * torch.tanh(states.c[t]))
        elif preset == "gru":
            torch.testing.assert_close(states.h[t], (1 - g["z"][t]) * g["n"][t] + g["z"][t] * h_prev)
        else:
            assert states.c is None and states.gates == {}


@pytest.mark.parametrize("preset", cell_names())
def test_make_model_sizes_for_task(preset):
    task = StandInTask()
    model = make_model(preset, task, hidden_size=8)
    assert model.preset == preset == model.cell.preset
    assert (model.cell.input_size, model.cell.hidden_size) == (3, 8)
    assert model(torch.randn(2, 4, 3)).shape == (2, 4, 2)


def test_make_model_passes_cell_params_and_input_to_output():
    model = make_model(
        "lstm1997", StandInTask(), hidden_size=4, cell_params={"block_size": 2}, input_to_output=True
    ).double()
    assert model.cell.block_size == 2 and model.input_readout.bias is None
    inputs = torch.randn(2, 5, 3, dtype=torch.float64)
    _, states = model(inputs, return_states=True)
    expected = model.readout(torch.stack(states.h, dim=1)) + inputs @ model.input_readout.weight.T
    torch.testing.assert_close(model(inputs), expected, rtol=1e-12, atol=1e-12)
    assert make_model("rnn", StandInTask(), hidden_size=4).input_readout is None


def test_make_model_uses_memory_lag_for_chrono():
    model = make_model("lstm_chrono", StandInTask(memory_lag=5), hidden_size=500)
    b_f = (model.cell.bias_ih + model.cell.bias_hh)[500:1000]
    assert b_f.max() <= math.log(4) + 1e-6 and b_f.max() > math.log(3)


@pytest.mark.parametrize(
    ("build_and_run", "field"),
    [
        (lambda: build("rnn")(torch.randn(2, 4, 5, dtype=torch.float64)), "inputs"),
        (lambda: build("rnn")(torch.randn(2, 3, dtype=torch.float64)), "inputs"),
        (lambda: build("lstm")(torch.randn(2, 0, 3, dtype=torch.float64)), "inputs"),
        (lambda: SequenceModel(make_cell("rnn", 3, 6), 3, 7, 2), "hidden_size"),
        (lambda: SequenceModel(make_cell("rnn", 3, 6), 3, 6, 0), "output_size"),
    ],
)
def test_bad_arguments_raise_one_line_value_error(build_and_run, field):
    with pytest.raises(ValueError, match=field) as error:
        build_and_run()
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("task_name", "params"), [("copy", {"delay": 5}), ("adding", {"length": 12})])
@pytest.mark.parametrize("preset", ["lstm_chrono", "gru"])
def test_make_model_runs_on_real_tasks(task_name, params, preset):
    task = make_task(task_name, **params)
    batch = task.sample(4, generator=torch.Generator().manual_seed(0))
    model = make_model(preset, task, hidden_size=8)
    outputs = model(batch.inputs)
    assert outputs.shape == (*batch.inputs.shape[:2], task.output_size)
    task.loss(outputs, batch).backward()
    assert all(p.grad is not None for p in model.parameters())
