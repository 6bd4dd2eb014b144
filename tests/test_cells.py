"""Cells against their torch.nn twins, the 1997 LSTM against its equations, and the init schemes."""

import math

import pytest
import torch
from scipy import stats

from seqmem import cells
from seqmem.cells import (
    GRUCell,
    LSTMCell,
    RNNCell,
    cell_names,
    init_forget_bias,
    init_identity,
    init_names,
    init_orthogonal,
    initialize,
    make_cell,
)

TOLERANCE = {torch.float32: 1e-6, torch.float64: 1e-12}
SHAPES = [(1, 1, 1), (3, 5, 7), (16, 10, 32)]  # (batch, input_size, hidden_size)


def rnn_twins(nonlinearity):
    def twin(i, h):
        return torch.nn.RNNCell(i, h, nonlinearity=nonlinearity)

    return (lambda i, h: RNNCell(i, h, nonlinearity), twin)


# name -> (our cell, its torch.nn twin), both built from (input_size, hidden_size)
TWINS = {
    "rnn_tanh": rnn_twins("tanh"),
    "rnn_relu": rnn_twins("relu"),
    "lstm": (LSTMCell, torch.nn.LSTMCell),
    "gru": (GRUCell, torch.nn.GRUCell),
}


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


def assert_close(actual, expected, dtype):
    torch.testing.assert_close(actual, expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


def leaf(*shape, dtype):
    return torch.randn(*shape, dtype=dtype).requires_grad_()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", list(TWINS))
def test_cell_matches_torch_nn(kind, shape, dtype):
    batch, input_size, hidden_size = shape
    make_ours, make_twin = TWINS[kind]
    twin = make_twin(input_size, hidden_size).to(dtype)
    ours = make_ours(input_size, hidden_size).to(dtype)
    ours.load_state_dict(twin.state_dict())

    x = leaf(batch, input_size, dtype=dtype)
    state = tuple(leaf(batch, hidden_size, dtype=dtype) for _ in ours.state_names)
    expected = twin(x, state if kind == "lstm" else state[0])
    expected = expected if isinstance(expected, tuple) else (expected,)
    actual = ours(x, state)
    for a, e in zip(actual, expected, strict=True):
        assert_close(a, e, dtype)

    cotangents = [torch.randn_like(e) for e in expected]
    inputs = [x, *state]

    def grads(outputs, module):
        loss = sum((o * w).sum() for o, w in zip(outputs, cotangents, strict=True))
        return torch.autograd.grad(loss, [*inputs, *module.parameters()])

    for a, e in zip(grads(actual, ours), grads(expected, twin), strict=True):
        assert_close(a, e, dtype)


def no_forget_reference(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    """Hochreiter & Schmidhuber (1997) written out: c' = c + i*g, h' = o*tanh(c'); rows i, f, g, o."""
    hidden = h.shape[1]
    a = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh
    i = torch.sigmoid(a[:, :hidden])
    g = torch.tanh(a[:, 2 * hidden : 3 * hidden])
    o = torch.sigmoid(a[:, 3 * hidden :])
    c_new = c + i * g
    return o * torch.tanh(c_new), c_new


@pytest.mark.parametrize("shape", SHAPES)
def test_no_forget_lstm_matches_its_equations(shape):
    batch, input_size, hidden_size = shape
    dtype = torch.float64
    cell = LSTMCell(input_size, hidden_size, forget_gate=False).to(dtype)
    # Loading a torch.nn state dict puts non-zero values in the f rows, which must be ignored.
    cell.load_state_dict(torch.nn.LSTMCell(input_size, hidden_size).to(dtype).state_dict())
    x = leaf(batch, input_size, dtype=dtype)
    h, c = leaf(batch, hidden_size, dtype=dtype), leaf(batch, hidden_size, dtype=dtype)
    params = list(cell.parameters())

    actual = cell(x, (h, c))
    expected = no_forget_reference(x, h, c, *params)
    for a, e in zip(actual, expected, strict=True):
        assert_close(a, e, dtype)

    weights = [torch.randn_like(e) for e in expected]
    inputs = [x, h, c, *params]

    def grads(outputs):
        loss = sum((o * w).sum() for o, w in zip(outputs, weights, strict=True))
        return torch.autograd.grad(loss, inputs)

    actual_grads = grads(actual)
    for a, e in zip(actual_grads, grads(expected), strict=True):
        assert_close(a, e, dtype)
    f_rows = slice(hidden_size, 2 * hidden_size)
    assert all(torch.count_nonzero(g[f_rows]) == 0 for g in actual_grads[3:])


def test_no_forget_lstm_reports_unit_forget_gate_and_zero_f_rows():
    cell = make_cell("lstm_no_forget", 3, 4)
    (_, c), gates = cell.step(torch.randn(2, 3), cell.initial_state(2))
    assert torch.equal(gates["f"], torch.ones(2, 4))
    assert torch.allclose(c, gates["i"] * gates["g"])
    assert all(torch.count_nonzero(p[4:8]) == 0 for p in cell.parameters())


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_step_gates_are_the_activations(kind):
    input_size, hidden_size = 3, 5
    make_ours, _ = TWINS[kind]
    cell = make_ours(input_size, hidden_size)
    x = torch.randn(4, input_size)
    state = tuple(torch.randn(4, hidden_size) for _ in cell.state_names)
    _, gates = cell.step(x, state)
    a_x = (x @ cell.weight_ih.T + cell.bias_ih).split(hidden_size, dim=1)
    a_h = (state[0] @ cell.weight_hh.T + cell.bias_hh).split(hidden_size, dim=1)
    if kind == "lstm":
        expected = {
            "i": torch.sigmoid(a_x[0] + a_h[0]),
            "f": torch.sigmoid(a_x[1] + a_h[1]),
            "g": torch.tanh(a_x[2] + a_h[2]),
            "o": torch.sigmoid(a_x[3] + a_h[3]),
        }
    else:
        r = torch.sigmoid(a_x[0] + a_h[0])
        expected = {"r": r, "z": torch.sigmoid(a_x[1] + a_h[1]), "n": torch.tanh(a_x[2] + r * a_h[2])}
    assert list(gates) == list(cell.gate_names)
    for name in cell.gate_names:
        torch.testing.assert_close(gates[name], expected[name])


@pytest.mark.parametrize("preset", cell_names())
def test_cell_works_with_torch_func(preset):
    cell = make_cell(preset, 3, 4, memory_lag=20).double()
    x = torch.randn(2, 3, dtype=torch.float64)
    state = cell.initial_state(2)
    state = tuple(torch.randn_like(s) for s in state)

    def next_h(h):
        return cell(x, (h, *state[1:]))[0]

    actual = torch.func.jacrev(next_h)(state[0])
    expected = torch.autograd.functional.jacobian(next_h, state[0])
    torch.testing.assert_close(actual, expected)
    per_sample = torch.func.vmap(lambda xi, hi: cell(xi[None], (hi[None], *[s[:1] for s in state[1:]]))[0])
    assert per_sample(x, state[0]).shape == (2, 1, 4)


@pytest.mark.parametrize("preset", cell_names())
def test_initial_state(preset):
    cell = make_cell(preset, 2, 6, memory_lag=10)
    state = cell.initial_state(3, dtype=torch.float64)
    assert len(state) == len(cell.state_names)
    assert all(s.shape == (3, 6) and s.dtype == torch.float64 and not s.any() for s in state)
    assert cell.preset == preset


def test_cell_names_are_the_studies_presets():
    assert cell_names() == [
        "rnn",
        "relu_rnn",
        "irnn",
        "orthogonal_rnn",
        "lstm",
        "lstm_chrono",
        "lstm_no_forget",
        "gru",
    ]


# -- initialisation ------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_identity_init_is_scaled_identity_with_zero_bias(scale):
    cell = init_identity(RNNCell(3, 8, "relu"), scale=scale)
    assert torch.equal(cell.weight_hh, scale * torch.eye(8))
    assert not cell.bias_ih.any() and not cell.bias_hh.any()


def test_irnn_preset():
    cell = make_cell("irnn", 3, 8)
    assert cell.nonlinearity == "relu"
    assert torch.equal(cell.weight_hh, torch.eye(8))
    assert not cell.bias_ih.any() and not cell.bias_hh.any()


@pytest.mark.parametrize(
    "cell",
    [make_cell("orthogonal_rnn", 3, 16), init_orthogonal(LSTMCell(3, 16))],
    ids=["orthogonal_rnn", "lstm"],
)
def test_orthogonal_init(cell):
    for block in cell.weight_hh.detach().split(16, dim=0):
        torch.testing.assert_close(block.T @ block, torch.eye(16), atol=1e-5, rtol=0)


@pytest.mark.parametrize("value", [1.0, 2.5])
def test_forget_bias(value):
    cell = init_forget_bias(LSTMCell(3, 8), value=value)
    total = cell.bias_ih + cell.bias_hh
    assert torch.equal(total[8:16], torch.full((8,), value))


def test_lstm_preset_has_forget_bias_one():
    cell = make_cell("lstm", 3, 8)
    assert torch.equal((cell.bias_ih + cell.bias_hh)[8:16], torch.ones(8))


@pytest.mark.parametrize("t_max", [2, 50, 1000])
def test_chrono_ranges(t_max):
    hidden = 600
    cell = make_cell("lstm_chrono", 1, hidden, memory_lag=t_max)
    total = (cell.bias_ih + cell.bias_hh).detach()
    b_i, b_f = total[:hidden], total[hidden : 2 * hidden]
    assert torch.equal(b_i, -b_f)
    assert b_f.min() >= 0 and b_f.max() <= math.log(t_max - 1) + 1e-6
    if t_max > 2:  # exp(b_f) ~ U[1, t_max - 1]
        draws = b_f.double().exp().numpy()
        assert stats.kstest(draws, stats.uniform(loc=1, scale=t_max - 2).cdf).pvalue > 1e-3


@pytest.mark.parametrize("scheme", init_names())
def test_initialize_by_name_applies_that_scheme(scheme):
    options = {"chrono": {"t_max": 10}}.get(scheme, {})
    torch.manual_seed(1)
    by_name = initialize(LSTMCell(2, 4), scheme, **options)
    torch.manual_seed(1)
    direct = getattr(cells, f"init_{scheme}")(LSTMCell(2, 4), **options)
    torch.manual_seed(1)
    untouched = LSTMCell(2, 4)

    def same(a, b):
        return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))

    assert same(by_name, direct) and not same(by_name, untouched)


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: make_cell("lstm_peephole", 2, 3), "preset"),
        (lambda: make_cell("lstm_chrono", 2, 3), "memory_lag"),
        (lambda: make_cell("lstm_chrono", 2, 3, memory_lag=1), "t_max"),
        (lambda: make_cell("rnn", 0, 3), "input_size"),
        (lambda: make_cell("gru", 2, 0), "hidden_size"),
        (lambda: RNNCell(2, 3, "sigmoid"), "nonlinearity"),
        (lambda: LSTMCell(2, 3, forget_gate="no"), "forget_gate"),
        (lambda: init_forget_bias(GRUCell(2, 3)), "forget_bias"),
        (lambda: initialize(RNNCell(2, 3), "xavier"), "scheme"),
    ],
)
def test_bad_arguments_raise_one_line_value_error(build, field):
    with pytest.raises(ValueError, match=field) as error:
        build()
    assert "\n" not in str(error.value)


def test_unknown_preset_lists_known_names():
    with pytest.raises(ValueError) as error:
        make_cell("transformer", 2, 3)
    assert all(name in str(error.value) for name in cell_names())
