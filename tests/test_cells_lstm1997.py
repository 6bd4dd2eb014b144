"""seqmem/cells/lstm1997.py: the 1997 LSTM against the paper's equations written out here.

References, each independent of the cell's code: a plain-autograd unroll of the paper's
equations (section 4, appendix A.1) with ``detach()`` exactly where the paper truncates; the
paper's own forward traces ds/dw (equations 25-28), which need no autograd at all; and the
closed-form step Jacobian of the truncated gradient.
"""

import numpy as np
import pytest
import torch

from seqmem.analysis import gradient_norms_by_lag, make_probe
from seqmem.cells import LSTM1997Cell, make_cell
from seqmem.cells.base import Transition
from seqmem.config import ProbeConfig, TrainConfig
from seqmem.model import SequenceModel
from seqmem.train import train
from tasks import make_task

LAYOUTS = {
    "blocks of 2": dict(hidden_size=4, block_size=2, input_gate_bias=[-3.0, -6.0]),
    "gates biased": dict(hidden_size=3, bias="gates", output_gate_bias=[-1.0, -2.0, -3.0]),
    "unbiased": dict(hidden_size=2, bias="none"),
    "experiment 2": dict(
        hidden_size=1, bias="none", output_gate=False, recurrent=False, squashing="logistic_identity"
    ),
}
INPUT = 3


def build(layout, dtype=torch.float64, seed=0, **changes):
    params = {**LAYOUTS[layout], **changes}
    hidden = params.pop("hidden_size")
    torch.manual_seed(seed)
    # wider weights than the paper's 0.1 so that every unit's nonlinearity is exercised
    return LSTM1997Cell(INPUT, hidden, init_range=0.8, **params).to(dtype)


def sigmoid(x):
    return 1 / (1 + torch.exp(-x))


def squashers(cell):
    """The paper's g and h (eqs. 4, 5, or experiment 2's), written from their definitions."""
    if cell.squashing == "centered":
        return (lambda x: 4 * sigmoid(x) - 2), (lambda s: 2 * sigmoid(s) - 1)
    return sigmoid, (lambda s: s)


def unit_weights(cell):
    """Per unit kind, its rows of [W_ih | W_hh] and biases, split by hand from the documented layout:
    rows (input gates, cells, output gates), sources (input gates, cells, output gates)."""
    n_in, hidden = cell.n_blocks, cell.hidden_size
    n_out = n_in if cell.output_gate else 0
    w = torch.cat([cell.weight_ih, cell.weight_hh], dim=1)
    b = torch.zeros(n_in + hidden + n_out, dtype=w.dtype)
    if cell.bias == "all":
        b = cell.bias_ih
    elif cell.bias == "gates":
        b = torch.cat([cell.bias_ih[:n_in], b[n_in : n_in + hidden], cell.bias_ih[n_in:]])
    rows = {"in": slice(0, n_in), "c": slice(n_in, n_in + hidden), "out": slice(n_in + hidden, None)}
    return {k: (w[r], b[r]) for k, r in rows.items()}


def paper_unroll(cell, inputs, truncate=True):
    """y_c(t) (B, L, H) by the paper's equations, one unit kind at a time; the recurrent sources
    y(t-1) are detached when ``truncate`` (the paper's d net(t) / d y(t-1) := 0)."""
    g, h = squashers(cell)
    weights = unit_weights(cell)
    batch, length, _ = inputs.shape
    S = cell.block_size
    y_in = torch.zeros(batch, cell.n_blocks, dtype=inputs.dtype)
    y_out = torch.zeros(batch, cell.n_blocks if cell.output_gate else 0, dtype=inputs.dtype)
    y_c = torch.zeros(batch, cell.hidden_size, dtype=inputs.dtype)
    s = torch.zeros(batch, cell.hidden_size, dtype=inputs.dtype)
    outputs = []
    for t in range(length):
        previous = torch.cat([y_in, y_c, y_out], dim=1) if cell.recurrent else inputs.new_zeros(batch, 0)
        if truncate:
            previous = previous.detach()
        u = torch.cat([inputs[:, t], previous], dim=1)
        net = {k: u @ w.T + b for k, (w, b) in weights.items()}
        y_in = sigmoid(net["in"])
        y_out = sigmoid(net["out"])
        gate_in = torch.stack([y_in[:, v // S] for v in range(cell.hidden_size)], dim=1)
        gate_out = (
            torch.stack([y_out[:, v // S] for v in range(cell.hidden_size)], dim=1)
            if cell.output_gate
            else torch.ones_like(s)
        )
        s = s + gate_in * g(net["c"])
        y_c = gate_out * h(s)
        outputs.append(y_c)
    return torch.stack(outputs, dim=1)


def gradients(cell, outputs, inputs, weights):
    loss = (outputs * weights).sum()
    params = [p for p in cell.parameters() if p.numel()]
    return torch.autograd.grad(loss, [inputs, *params])


def sequence_inputs(seed=1, batch=4, length=15):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, INPUT, generator=generator, dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize("path", ["unroll", "fast"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_truncated_gradient_is_the_papers(layout, path):
    cell = build(layout)
    inputs = sequence_inputs()
    expected = paper_unroll(cell, inputs)
    if path == "fast":
        actual = cell.fast_hidden_states(inputs, training=True)
    else:
        actual = torch.stack(
            SequenceModel(cell, INPUT, cell.hidden_size, 1, fused=False).unroll(inputs).h, dim=1
        )
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)
    weights = torch.randn_like(expected)
    for a, e in zip(
        gradients(cell, actual, inputs, weights), gradients(cell, expected, inputs, weights), strict=True
    ):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12)


def test_full_gradient_differs_from_the_truncated_one_and_is_plain_autograds():
    truncated, full = build("blocks of 2"), build("blocks of 2", truncated=False)
    inputs = sequence_inputs()
    weights = torch.randn(4, 15, 4, dtype=torch.float64)
    assert full.fast_hidden_states(inputs, training=True) is None  # only the truncated one by hand
    unroll = SequenceModel(full, INPUT, 4, 1, fused=False).unroll(inputs)
    actual = gradients(full, torch.stack(unroll.h, dim=1), inputs, weights)
    expected = gradients(full, paper_unroll(full, inputs, truncate=False), inputs, weights)
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12)
    cut = gradients(truncated, paper_unroll(truncated, inputs), inputs, weights)
    assert not torch.allclose(cut[2], actual[2])  # weight_hh: the recurrent paths were cut


def test_truncated_gradient_equals_the_papers_forward_traces():
    """Equations 25-28: per cell v, ds_v/dw accumulates online (no backward pass); the update of
    a weight is sum_t e_s_v(t) ds_v(t)/dw with e_s_v(t) = e_y_v(t) y_out(t) h'(s_v(t))."""
    cell = build("blocks of 2")
    inputs = sequence_inputs(batch=1)
    e_y = torch.randn(1, 15, 4, dtype=torch.float64)
    (_, _, w_hh, _) = gradients(cell, cell.fast_hidden_states(inputs, True), inputs, e_y)
    weights = unit_weights(cell)
    with torch.no_grad():
        S, H, n = cell.block_size, cell.hidden_size, cell.n_blocks
        trace_c = torch.zeros(H, 3 + 8, dtype=torch.float64)  # ds_v/dw_{c_v, m}
        trace_in = torch.zeros(H, 3 + 8, dtype=torch.float64)  # ds_v/dw_{in_j(v), m}
        grad_c = torch.zeros(H, 11, dtype=torch.float64)
        grad_in, grad_out = torch.zeros(n, 11, dtype=torch.float64), torch.zeros(n, 11, dtype=torch.float64)
        y = torch.zeros(8, dtype=torch.float64)  # sources: input gates, cells, output gates
        s = torch.zeros(H, dtype=torch.float64)
        for t in range(15):
            u = torch.cat([inputs[0, t], y])
            net = {k: w @ u + b for k, (w, b) in weights.items()}
            f_in, f_out = sigmoid(net["in"]), sigmoid(net["out"])
            g = 4 * sigmoid(net["c"]) - 2
            g_slope = 4 * sigmoid(net["c"]) * (1 - sigmoid(net["c"]))
            for v in range(H):
                j = v // S
                trace_c[v] += g_slope[v] * f_in[j] * u  # eq. 27
                trace_in[v] += g[v] * f_in[j] * (1 - f_in[j]) * u  # eq. 25
            s = s + torch.stack([f_in[v // S] for v in range(H)]) * g
            h = 2 * sigmoid(s) - 1
            h_slope = 2 * sigmoid(s) * (1 - sigmoid(s))
            for v in range(H):
                j = v // S
                e_s = e_y[0, t, v] * f_out[j] * h_slope[v]  # eq. 23
                grad_c[v] += e_s * trace_c[v]  # eq. 28
                grad_in[j] += e_s * trace_in[v]  # eq. 26
                grad_out[j] += e_y[0, t, v] * h[v] * f_out[j] * (1 - f_out[j]) * u  # eq. 21, no history
            y = torch.cat([f_in, torch.stack([f_out[v // S] for v in range(H)]) * h, f_out])
    expected_hh = torch.cat([grad_in, grad_c, grad_out])[:, 3:]
    torch.testing.assert_close(w_hh, expected_hh, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_path_equals_the_unroll(layout, dtype):
    cell = build(layout, dtype)
    inputs = sequence_inputs().detach().to(dtype).requires_grad_()
    fast = cell.fast_hidden_states(inputs, training=True)
    plain = torch.stack(SequenceModel(cell, INPUT, cell.hidden_size, 1, fused=False).unroll(inputs).h, dim=1)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(fast, plain, rtol=tol, atol=tol)
    weights = torch.randn_like(plain)
    for a, b in zip(
        gradients(cell, fast, inputs, weights), gradients(cell, plain, inputs, weights), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_cells_of_a_block_share_their_gates_and_blocks_do_not():
    cell = build("blocks of 2")
    assert cell.weight_ih.shape[0] == 2 + 4 + 2  # one input and one output gate unit per block
    with torch.no_grad():
        state = cell.initial_state(5, dtype=torch.float64)
        for x in sequence_inputs(batch=5).detach().unbind(dim=1):
            state, gates = cell.step(x, state)
            for name in ("i", "o"):
                by_block = gates[name].view(5, 2, 2)
                torch.testing.assert_close(by_block[..., 0], by_block[..., 1], rtol=0, atol=0)
                assert not torch.allclose(by_block[:, 0, 0], by_block[:, 1, 0])
        # moving block 0's input gate bias moves block 0's cells only
        x = torch.randn(5, INPUT, dtype=torch.float64)
        before, _ = cell.step(x, cell.initial_state(5, dtype=torch.float64))
        cell.bias_ih[cell.gate_rows("i").start] += 1.0
        after, _ = cell.step(x, cell.initial_state(5, dtype=torch.float64))
    changed = (after[1] != before[1]).all(dim=0)
    assert changed.tolist() == [True, True, False, False]


def test_initialisation_follows_the_paper():
    cell = make_cell("lstm1997", 2, 4, params={"block_size": 2, "input_gate_bias": [-3, -6]})
    assert cell.bias_ih[cell.gate_rows("i")].tolist() == [-3.0, -6.0]
    others = torch.cat([cell.weight_ih.flatten(), cell.weight_hh.flatten(), cell.bias_ih[2:]])
    assert others.abs().max() <= 0.1 and others.abs().max() > 0.05  # U[-0.1, 0.1]
    staggered = LSTM1997Cell(7, 4, output_gate_bias=[-1, -2, -3, -4], bias="gates", init_range=0.2)
    assert staggered.bias_ih.shape == (8,)  # gate units only
    assert staggered.bias_ih[cell.n_blocks * 0 + 4 :].tolist() == [-1.0, -2.0, -3.0, -4.0]
    assert staggered.weight_ih.abs().max() <= 0.2
    # experiment 2a: 101 inputs, one cell and its input gate, nothing recurrent, no bias
    two_a = LSTM1997Cell(
        101, 1, bias="none", output_gate=False, recurrent=False, squashing="logistic_identity"
    )
    assert sum(p.numel() for p in two_a.parameters()) == 2 * 101


def test_squashing_functions_have_the_papers_ranges():
    cell = build("blocks of 2")
    x = torch.linspace(-40, 40, 801, dtype=torch.float64)
    g, h = squashers(cell)
    with torch.no_grad():
        (h_t, c_t, _, _), gates = cell.recur(
            x[:, None].expand(-1, cell.weight_ih.shape[0]).contiguous(),
            cell.initial_state(801, dtype=torch.float64),
        )
    assert gates["g"].min() == pytest.approx(-2) and gates["g"].max() == pytest.approx(2)
    torch.testing.assert_close(gates["g"][:, 0], g(x))
    torch.testing.assert_close(h_t, gates["o"] * h(c_t))
    assert (gates["i"] >= 0).all() and (gates["i"] <= 1).all()
    exp2 = build("experiment 2")
    with torch.no_grad():
        (h2, c2, _, o2), gates2 = exp2.recur(
            x[:, None].expand(-1, 2).contiguous(), exp2.initial_state(801, dtype=torch.float64)
        )
    assert (gates2["g"] >= 0).all() and (gates2["g"] <= 1).all()
    torch.testing.assert_close(h2, c2)  # h = identity, no output gate
    assert (o2 == 1).all()


def test_step_jacobian_is_the_truncated_gradients():
    """ds/ds = I, dy/ds = diag(y_out h'(s(t))), every other block zero."""
    cell = build("blocks of 2")
    model = SequenceModel(cell, INPUT, 4, 1).double()
    inputs = sequence_inputs(batch=3, length=5).detach()
    with torch.no_grad():
        _, states = model(inputs, return_states=True)
        x_proj = cell.project_input(inputs[:, 4])
        before = tuple(states.blocks[name][3] for name in cell.state_names)
        after, gates = cell.recur(x_proj, before)
        jacobian = cell.step_jacobian(Transition(x_proj, before, after, gates))
    dense = torch.zeros(3, 16, 16, dtype=torch.float64)
    for j, column in enumerate(jacobian.columns):
        for i, block in enumerate(column):
            dense[:, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4] = block
    expected = torch.zeros(3, 16, 16, dtype=torch.float64)
    expected[:, 4:8, 4:8] = torch.eye(4)
    slope = 0.5 * (1 - torch.tanh(0.5 * after[1]).square())
    expected[:, 0:4, 4:8] = torch.diag_embed(gates["o"] * slope)
    torch.testing.assert_close(dense, expected, rtol=1e-12, atol=1e-12)


def test_only_the_carousel_carries_the_gradient_back():
    """Truncation made visible by the analysis: dL/dh_t vanishes beyond lag 0, dL/dc_t does not."""
    task = make_task("adding", length=30, variant="hochreiter1997")
    torch.manual_seed(0)
    model = SequenceModel(make_cell("lstm1997", 2, 4, params={"block_size": 2}), 2, 4, 1)
    batch = task.sample(8, torch.Generator().manual_seed(0))
    frame = gradient_norms_by_lag(model, batch, task, dtype=torch.float64)
    mean = frame[frame["stat"] == "mean"].pivot(index="lag", columns="quantity", values="value")
    assert mean.loc[0, "grad_norm"] > 0
    assert (mean.loc[1:, "grad_norm"] == 0).all()
    # every lag reached by all 8 sequences (lengths 30-33): nothing decays along the carousel, since
    # dL/dc_t = dL/dc_{t+1} where no later output adds error (only the last step is scored)
    cell_path = mean.loc[1:29, "cell_grad_norm"].to_numpy(dtype=float)
    assert (cell_path > 0).all()
    np.testing.assert_allclose(cell_path, cell_path[0], rtol=1e-12)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"block_size": 3}, "block_size=3 is invalid: must divide hidden_size=4"),
        ({"input_gate_bias": [-1.0]}, r"input_gate_bias=\[-1.0\] is invalid: must be None or 4 numbers"),
        (
            {"bias": "none", "output_gate_bias": [-1, -2, -3, -4]},
            "output_gate_bias=.* is invalid: this cell has no",
        ),
        ({"output_gate": False, "output_gate_bias": [-1, -2, -3, -4]}, "output_gate_bias=.* is invalid"),
        (
            {"squashing": "tanh"},
            "squashing='tanh' is invalid: must be one of 'centered', 'logistic_identity'",
        ),
        ({"bias": "some"}, "bias='some' is invalid"),
        ({"init_range": 0}, "init_range=0 is invalid: must be a number > 0"),
        ({"truncated": 1}, "truncated=1 is invalid: must be True or False"),
    ],
)
def test_bad_layouts_are_one_line_errors(params, message):
    with pytest.raises(ValueError, match=message):
        make_cell("lstm1997", 2, 4, params=params)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("p", "lr", "grown", "within"),
    [(10, 1.0, False, 3_000), (10, 1.0, True, 3_000), (100, 0.25, True, 3 * 5_040)],
    ids=["p10-cell-from-the-start", "p10-cell-joins-at-plateau", "p100-cell-joins-at-plateau"],
)
def test_the_experiment_2_net_learns_a_noise_free_lag_online(p, lr, grown, within):
    """Experiment 2a's net (one cell and its input gate, g logistic, h the identity, outputs that
    also see the inputs), trained online, passes the paper's rule (10,000 successive sequences
    right).  At p = 10 and the paper's alpha = 1.0 within about a thousand sequences, with the
    cell there from the start or grown as the paper grew it (the cell joins once the loss of 500
    sequences is within 1 % of the 500 before's; it then learns the lag after the join).  At the
    paper's p = 100 grown, at alpha / 4 (softmax outputs lack the paper's f' <= 1/4; at alpha = 1
    the join switches the cell off, see the README), within 3x the paper's 5,040 sequences."""
    net = {"bias": "none", "output_gate": False, "recurrent": False, "squashing": "logistic_identity"}
    online = {"optimizer": "sgd", "momentum": 0.0, "lr": lr, "batch_size": 1, "grad_clip": None}
    config = TrainConfig(
        task="long_lag",
        task_params={"p": p, "variant": "2a"},
        cell="lstm1997",
        hidden_size=1,
        cell_params={**net, "init_range": 0.2},
        input_to_output=True,
        readout_init_range=0.2,
        loss_reduction="sequence_sum",
        stopping="hochreiter1997",
        max_sequences=10_000 + within,
        eval_every=5000,
        eval_batch_size=256,
        cell_joins_at_plateau=500 if grown else None,
        **online,
    )
    result = train(config, progress=False)
    assert result.status == "solved"
    before_success = result.sequences_seen - 10_000  # sequences before the 10,000 right ones
    assert before_success < within
    assert result.final_metrics["error_rate"] == 0.0
    if grown:  # without the cell the last step is a coin flip: success comes after the join
        assert 1_000 <= result.cell_joined_step < before_success


def test_trains_and_is_probed_and_its_carousel_is_the_identity():
    """A cell like the others: train() and the probe run on it.  The product dc_T/dc_t of its
    truncated step Jacobians is the identity at every lag (spectral norm 1, Frobenius sqrt(H)), and
    dh_T/dh_t vanishes beyond lag 0."""
    config = TrainConfig(
        task="adding",
        task_params={"length": 20, "variant": "hochreiter1997"},
        cell="lstm1997",
        hidden_size=4,
        cell_params={"block_size": 2},
        batch_size=8,
        max_steps=4,
        eval_every=2,
        eval_batch_size=16,
    )
    result = train(config, [make_probe(ProbeConfig(batch_size=6, jacobian_batch_size=2, lyapunov_k=4))])
    probes = result.probes.set_index("quantity")
    assert {"gate_i", "gate_o", "cell_grad_norm", "lyapunov"} <= set(probes.index)
    assert "gate_f" not in probes.index  # no forget gate: left out, not faked
    np.testing.assert_allclose(probes.loc["cell_jacobian_spectral", "value"], 1.0, rtol=1e-12)
    np.testing.assert_allclose(probes.loc["cell_jacobian_frobenius", "value"], 2.0, rtol=1e-12)
    hidden = probes.loc["jacobian_spectral"]
    assert (hidden.loc[hidden["lag"] > 0, "value"] == 0).all()
    assert np.isfinite(result.probes["value"]).all()
