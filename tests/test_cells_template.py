"""The template every registered cell preset passes, and a toy cell that needs nothing but a class
and a preset registration to work with the model, training and every analysis function.

The template (parametrized over ``cell_names()``, so a new preset is checked without editing this
file): the torch.nn twin where one exists (same weights: outputs and gradients), the cell's step
Jacobian against ``torch.func.jacrev`` of its ``recur``, and the fast whole-sequence path against
the plain recurrence (outputs and gradients, float32 and float64, train and eval mode).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqmem.analysis import (
    gradient_norms_by_lag,
    jacobian_norms_by_lag,
    lyapunov_spectrum,
)
from seqmem.analysis.common import batch_as_dtype
from seqmem.analysis.gradients import reference_loss
from seqmem.cells import (
    GRUCell,
    LSTMCell,
    RecurrentCell,
    RNNCell,
    cell_names,
    make_cell,
    register_preset,
    unregister_preset,
)
from seqmem.cells.base import StepJacobian, Transition
from seqmem.model import SequenceModel, make_model
from seqmem.train import build_model
from tasks import AddingTask
from tests.cell_checks import trained_and_probed

TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12}
INPUT, HIDDEN = 3, 6  # even: the uRNN holds HIDDEN / 2 complex units
# torch.nn has no LSTM without forget gate, expRNN, uRNN or 1997 LSTM (their own tests check them
# against their equations)
WITHOUT_TWIN = {"lstm_no_forget", "exprnn", "urnn", "lstm1997"}
WITHOUT_FAST_PATH = {"lstm_no_forget"}


def build(preset, dtype=torch.float64):
    return make_cell(preset, INPUT, HIDDEN, memory_lag=20).to(dtype)


def torch_nn_twin(cell):
    """The torch.nn cell that computes exactly ``cell``'s step, or None where torch.nn has none."""
    if type(cell) is RNNCell:
        return torch.nn.RNNCell(cell.input_size, cell.hidden_size, nonlinearity=cell.nonlinearity)
    if type(cell) is LSTMCell and cell.forget_gate:
        return torch.nn.LSTMCell(cell.input_size, cell.hidden_size)
    if type(cell) is GRUCell:
        return torch.nn.GRUCell(cell.input_size, cell.hidden_size)
    return None


def dense(jacobian: StepJacobian) -> torch.Tensor:
    """The full (B, S, S) matrix a ``StepJacobian`` stands for."""
    rows = [
        torch.cat(
            [
                torch.diag_embed(column[i]) if diagonal else column[i]
                for column, diagonal in zip(jacobian.columns, jacobian.diagonal, strict=True)
            ],
            dim=-1,
        )
        for i in range(len(jacobian.columns))
    ]
    return torch.cat(rows, dim=-2)


def random_step(cell, batch=6, seed=0):
    """A step of ``cell`` from a random input and a random (non-zero) state, without autograd, and
    a random positive scale per sample."""
    generator = torch.Generator().manual_seed(seed)
    dtype = cell.weight_hh.dtype
    with torch.no_grad():
        x_proj = cell.project_input(torch.randn(batch, cell.input_size, generator=generator, dtype=dtype))
        state = tuple(
            torch.randn(batch, cell.hidden_size, generator=generator, dtype=dtype) for _ in cell.state_names
        )
        step = Transition(x_proj, state, *cell.recur(x_proj, state))
    return step, torch.rand(batch, generator=generator, dtype=dtype) + 0.5


def plain_hidden(cell, inputs):
    """All h_t by the model's plain unroll loop over ``recur``."""
    model = SequenceModel(cell, cell.input_size, cell.hidden_size, 1, fused=False)
    return torch.stack(model.unroll(inputs).h, dim=1)


# -- the template -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("preset", cell_names())
def test_matches_its_torch_nn_twin(preset, dtype):
    ours = build(preset, dtype)
    twin = torch_nn_twin(ours)
    assert (twin is None) == (preset in WITHOUT_TWIN)
    if twin is None:
        return
    twin = twin.to(dtype)
    twin.load_state_dict(ours.state_dict())
    x = torch.randn(4, INPUT, dtype=dtype, requires_grad=True)
    blocks = tuple(torch.randn(4, HIDDEN, dtype=dtype, requires_grad=True) for _ in ours.state_names)
    hx = blocks if len(blocks) > 1 else blocks[0]
    expected, actual = twin(x, hx), ours(x, hx)
    expected, actual = (v if isinstance(v, tuple) else (v,) for v in (expected, actual))
    tol = TOLERANCE[dtype]
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=tol, atol=tol)
    weights = [torch.randn_like(e) for e in expected]

    def grads(outputs, cell):
        loss = sum((o * w).sum() for o, w in zip(outputs, weights, strict=True))
        return torch.autograd.grad(loss, [x, *blocks, *cell.parameters()])

    for a, e in zip(grads(actual, ours), grads(expected, twin), strict=True):
        torch.testing.assert_close(a, e, rtol=tol, atol=tol)


def jacrev_of_recur(cell, x_proj, state):
    """ds_t/ds_{t-1} per sample (B, S, S): torch.func.jacrev of the batched ``recur`` w.r.t. the
    flat state (B, S), then each sample's diagonal block of the (B, S, B, S) result."""
    sizes = [block.shape[-1] for block in state]

    def flat_step(flat):
        return torch.cat(cell.recur(x_proj, tuple(flat.split(sizes, dim=-1)))[0], dim=-1)

    full = torch.func.jacrev(flat_step)(torch.cat(state, dim=-1))
    samples = torch.arange(full.shape[0])
    return full[samples, :, samples, :]


@pytest.mark.parametrize("scaled", [False, True], ids=["unscaled", "scaled"])
@pytest.mark.parametrize("preset", cell_names())
def test_step_jacobian_is_jacrev_of_recur(preset, scaled):
    cell = build(preset)
    step, scale = random_step(cell)
    jacobian = cell.step_jacobian(step, scale if scaled else None)
    expected = jacrev_of_recur(cell, step.x_proj, step.state)
    if scaled:
        expected = expected * scale[:, None, None]
    assert jacobian.sizes == [HIDDEN] * len(cell.state_names)
    assert not any(block.requires_grad for column in jacobian.columns for block in column)
    torch.testing.assert_close(dense(jacobian), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("preset", cell_names())
def test_fast_path_equals_the_plain_recurrence(preset, dtype, training):
    cell = build(preset, dtype)
    inputs = torch.randn(5, 12, INPUT, dtype=dtype, requires_grad=True)
    fast = cell.fast_hidden_states(inputs, training)
    assert (fast is None) == (preset in WITHOUT_FAST_PATH)
    if fast is None:
        return
    plain = plain_hidden(cell, inputs)
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(fast, plain, rtol=tol, atol=tol)
    weights = torch.randn_like(plain)
    wrt = [inputs, *cell.parameters()]
    for a, b in zip(
        torch.autograd.grad((fast * weights).sum(), wrt),
        torch.autograd.grad((plain * weights).sum(), wrt),
        strict=True,
    ):
        # a gradient sums many terms, in a different order on each path (the uRNN's fast path even
        # multiplies by W's dense form, its recur by the factors): rounding scales with its size
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * max(1.0, b.abs().max().item()))


# -- a toy cell: one class that writes only recur, one preset ---------------------------------------


class LeakyCell(RecurrentCell):
    r"""A leaky integrator c with a sigmoid leak gate z, and a leaky read-out h.

    [a_z, a_n] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
    z = \sigma(a_z),   c_t = z * c_{t-1} + (1 - z) * tanh(a_n),   h_t = (h_{t-1} + tanh(c_t)) / 2
    """

    gate_names = ("z", "n")
    state_names = ("h", "c")
    n_gates = 2

    def recur(self, x_proj, state):
        h, c = state
        a_z, a_n = (x_proj + F.linear(h, self.weight_hh, self.bias_hh)).chunk(2, dim=1)
        z, n = torch.sigmoid(a_z), torch.tanh(a_n)
        c = z * c + (1 - z) * n
        return ((h + torch.tanh(c)) / 2, c), {"z": z, "n": n}


@pytest.fixture
def toy():
    register_preset("leaky", lambda input_size, hidden_size, _: LeakyCell(input_size, hidden_size))
    yield "leaky"
    unregister_preset("leaky")


def toy_model(toy, length=8, hidden_size=4):
    task = AddingTask(length=length)
    return make_model(toy, task, hidden_size).double(), task


def toy_batch(task, size, seed):
    return batch_as_dtype(task.sample(size, torch.Generator().manual_seed(seed)), torch.float64)


def test_toy_step_jacobian_is_autograds(toy):
    cell = build(toy)
    step, scale = random_step(cell)
    jacobian = dense(cell.step_jacobian(step, scale))
    for b in range(len(scale)):  # one sample at a time, by torch.autograd.functional

        def one_step(flat, b=b):
            blocks = tuple(flat[None].split(HIDDEN, dim=-1))
            return torch.cat(cell.recur(step.x_proj[b : b + 1], blocks)[0], dim=-1)[0]

        expected = torch.autograd.functional.jacobian(one_step, torch.cat([s[b] for s in step.state]))
        torch.testing.assert_close(jacobian[b], scale[b] * expected, rtol=1e-12, atol=1e-12)


def test_toy_runs_in_the_sequence_model_like_a_torch_nn_cell_in_a_loop(toy):
    model, task = toy_model(toy)
    batch = toy_batch(task, 3, 0)
    outputs, states = model(batch.inputs, return_states=True)
    assert model.cell.fast_hidden_states(batch.inputs, True) is None
    hx, expected = None, []
    for x in batch.inputs.unbind(dim=1):
        hx = model.cell(x, hx)  # torch.nn-style: (h, c) in, (h, c) out
        expected.append(model.readout(hx[0]))
    torch.testing.assert_close(outputs, torch.stack(expected, dim=1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(model(batch.inputs), outputs, rtol=0, atol=0)
    assert len(states.h) == len(states.c) == batch.seq_len and set(states.gates) == {"z", "n"}
    task.loss(outputs, batch).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_toy_jacobian_products_equal_autograd_through_the_unroll(toy):
    model, task = toy_model(toy)
    batch = toy_batch(task, 2, 1)
    inputs = batch.inputs
    frame = jacobian_norms_by_lag(model, batch, task)
    cell, (_, states) = model.cell, model(inputs, return_states=True)
    projected = cell.project_input(inputs).detach()
    length = inputs.shape[1]

    def flow(flat, b, t):
        """s_T from s_t = ``flat`` for sample b: the recurrence run on from step t + 1."""
        state = tuple(flat[None].split(4, dim=-1))
        for x in projected[b : b + 1, t + 1 :].unbind(dim=1):
            state, _ = cell.recur(x, state)
        return torch.cat(state, dim=-1)[0]

    # ds_T/ds_t (B, L, S, S) by autograd through the whole rest of the run, no step Jacobians
    products = torch.stack(
        [
            torch.stack(
                [
                    torch.autograd.functional.jacobian(
                        lambda flat, b=b, t=t: flow(flat, b, t),
                        torch.cat([states.h[t][b], states.c[t][b]]).detach(),
                    )
                    for t in range(length)
                ]
            )
            for b in range(2)
        ]
    )
    for name, block in (("jacobian", products[..., :4, :4]), ("cell_jacobian", products[..., 4:, 4:])):
        for kind, ord in (("spectral", 2), ("frobenius", "fro")):
            rows = frame[(frame["quantity"] == f"{name}_{kind}") & (frame["stat"] == "mean")]
            expected = torch.linalg.matrix_norm(block, ord=ord).numpy()[:, rows["t"].to_numpy(np.int64)]
            np.testing.assert_allclose(rows["value"], expected.mean(axis=0), rtol=1e-9)


def test_toy_lyapunov_exponents_sum_to_the_mean_log_determinant(toy):
    # with k = S the QR frame is square: sum_i log|R_ii| = log|det J_t| at every step
    model, task = toy_model(toy)
    batch = toy_batch(task, 3, 2)
    inputs = batch.inputs
    frame = lyapunov_spectrum(model, batch, task, 8)
    _, states = model(inputs, return_states=True)
    cell, determinants = model.cell, []
    with torch.no_grad():
        projected = cell.project_input(inputs)
        state = cell.initial_state(3, dtype=torch.float64)
        for t in range(inputs.shape[1]):
            determinants.append(torch.linalg.det(jacrev_of_recur(cell, projected[:, t], state)))
            state = (states.h[t], states.c[t])
    log_det = torch.log(torch.stack(determinants).abs()).mean(dim=0)  # per sample
    exponents = frame.loc[frame["stat"] == "mean", "value"]
    assert len(exponents) == 8 and exponents.sum() == pytest.approx(log_det.mean().item(), rel=1e-10)


def test_toy_gradient_norms_by_lag_are_the_gradients_of_its_states(toy):
    model, task = toy_model(toy)
    batch = toy_batch(task, 4, 3)
    frame = gradient_norms_by_lag(model, batch, task, per_sample=True)
    frame = frame.pivot_table(index=["sample", "t", "lag"], columns="quantity", values="value").reset_index()
    hx, hs, cs, outputs = None, [], [], []
    for x in batch.inputs.unbind(dim=1):  # the same model, stepped by hand
        hx = model.cell(x, hx)
        hs.append(hx[0])
        cs.append(hx[1])
        outputs.append(model.readout(hx[0]))
    loss, origin = reference_loss(torch.stack(outputs, dim=1), batch, task, "last")
    grads = torch.autograd.grad(loss, hs + cs)
    length = len(hs)
    for name, part in (("grad_norm", grads[:length]), ("cell_grad_norm", grads[length:])):
        norms = torch.linalg.vector_norm(torch.stack(part, dim=1), dim=-1).numpy()  # (B, L)
        expected = norms[frame["sample"].to_numpy(np.int64), frame["t"].to_numpy(np.int64)]
        np.testing.assert_allclose(frame[name], expected, rtol=1e-12)
    assert (frame["lag"] == origin.numpy()[frame["sample"].to_numpy(np.int64)] - frame["t"]).all()


def test_toy_trains_and_is_probed(toy):
    result = trained_and_probed(toy)
    assert np.isfinite(result.history[["loss", "train_loss", "grad_norm"]].to_numpy()[1:]).all()
    initial = build_model(result.config).state_dict()
    assert not torch.equal(result.state_dict["cell.weight_hh"], initial["cell.weight_hh"])
    assert set(result.probes["quantity"]) == {
        "grad_norm",
        "cell_grad_norm",
        "input_saliency",
        "jacobian_spectral",
        "jacobian_frobenius",
        "cell_jacobian_spectral",
        "cell_jacobian_frobenius",
        "gate_z",
        "lyapunov",
    }  # no forget gate, no gradient bound: those quantities are left out, not faked
    assert np.isfinite(result.probes["value"]).all()
