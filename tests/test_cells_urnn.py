"""The uRNN cell (seqmem/cells/urnn.py) against its equations: W = D3 R2 F^-1 D2 Pi R1 F D1
multiplied out densely here in numpy from the DFT matrix's closed form, unitarity through training,
the paper's initialisation, Jacobian products of norm 1 with a silent nonlinearity, the step
Jacobian at z = 0.  The shared template (tests/test_cells_template.py) checks its step Jacobian
against jacrev and its fast path (W's dense form) against its plain recurrence (the FFT factors);
tests/test_cells_activations.py the complex modReLU and the BPTT through it."""

import math

import numpy as np
import pytest
import torch

from seqmem.cells import UnitaryRNNCell, make_cell
from seqmem.cells.base import Transition
from seqmem.model import make_model
from tasks import CopyTask
from tests.cell_checks import (
    HIDDEN,
    PROBED,
    spectral_norms_by_lag,
    trained,
    trained_and_probed,
)
from tests.test_cells_template import dense, jacrev_of_recur


def dft_matrix(n):
    """The unitary DFT, F[j, k] = exp(-2 pi i j k / n) / sqrt(n), from its closed form."""
    j, k = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    return np.exp(-2j * np.pi * j * k / n) / np.sqrt(n)


def dense_unitary(cell):
    """D3 R2 F^-1 D2 Pi R1 F D1 as one complex (N, N) numpy matrix, from the cell's parameters."""
    n = cell.complex_units
    theta = cell.phases.detach().double().numpy()
    d1, d2, d3 = (np.diag(np.exp(1j * t)) for t in theta)
    reflections = []
    for row in cell.reflections.detach().double().numpy():
        v = (row[:n] + 1j * row[n:])[:, None]
        reflections.append(np.eye(n) - 2 * (v @ v.conj().T) / (v.conj().T @ v).real)
    permutation = np.zeros((n, n))
    permutation[np.arange(n), cell.permutation.numpy()] = 1  # (Pi z)_k = z_{perm[k]}
    f = dft_matrix(n)
    return d3 @ reflections[1] @ f.conj().T @ d2 @ permutation @ reflections[0] @ f @ d1


def real_form(w):
    return np.block([[w.real, -w.imag], [w.imag, w.real]])


def test_fft_factors_are_the_unitary_dft_matrix():
    n = 8
    identity = torch.eye(n, dtype=torch.complex128)
    np.testing.assert_allclose(torch.fft.fft(identity, norm="ortho").numpy(), dft_matrix(n), atol=1e-14)
    np.testing.assert_allclose(
        torch.fft.ifft(identity, norm="ortho").numpy(), dft_matrix(n).conj().T, atol=1e-14
    )


def test_factored_weight_equals_the_dense_product():
    torch.manual_seed(4)
    cell = UnitaryRNNCell(3, 14).double()
    w = dense_unitary(cell)
    np.testing.assert_allclose(w.conj().T @ w, np.eye(7), atol=1e-12)
    np.testing.assert_allclose(cell.weight_hh.detach().numpy(), real_form(w), rtol=0, atol=1e-12)
    h = torch.randn(5, 14, dtype=torch.float64)  # (Re h, Im h) rows
    z = h[:, :7].numpy() + 1j * h[:, 7:].numpy()
    expected = (w @ z.T).T
    got = cell.unitary(h).detach().numpy()
    np.testing.assert_allclose(got[:, :7] + 1j * got[:, 7:], expected, rtol=0, atol=1e-12)


def test_initialisation_is_the_papers():
    torch.manual_seed(5)
    cell = UnitaryRNNCell(10, 512)
    assert not cell.modrelu_bias.any() and cell.bias_ih is None  # the nonlinearity starts silent
    theta, reflections = cell.phases.detach(), cell.reflections.detach()
    assert -math.pi <= theta.min() < -3.0 and 3.0 < theta.max() <= math.pi
    assert -1 <= reflections.min() < -0.99 and 0.99 < reflections.max() <= 1
    bound = math.sqrt(6 / (10 + 256))  # Glorot: input size and N complex units
    assert -bound <= cell.weight_ih.min() < -0.9 * bound and 0.9 * bound < cell.weight_ih.max() <= bound
    assert sorted(cell.permutation.tolist()) == list(range(256))
    assert cell.orthogonal_parameters() == [cell.phases, cell.reflections]


def test_odd_hidden_size_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"^hidden_size=5 is invalid for the uRNN: must be even") as error:
        make_cell("urnn", 3, 5)
    assert "\n" not in str(error.value)


@pytest.mark.slow  # 1,000 steps: about 20 s
def test_stays_unitary_through_1000_float32_training_steps():
    before, after = trained("urnn")
    m, n = after.cell.weight_hh.detach(), HIDDEN // 2
    assert m.dtype == torch.float32
    assert (m.T @ m - torch.eye(HIDDEN)).abs().max() <= 1e-5
    # the real form of a complex matrix: W*W = I is M^T M = I with this block structure
    torch.testing.assert_close(m[:n, :n], m[n:, n:], rtol=0, atol=1e-6)
    torch.testing.assert_close(m[:n, n:], -m[n:, :n], rtol=0, atol=1e-6)
    assert (m - before.cell.weight_hh.detach()).abs().max() > 0.2  # it did move far


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_jacobian_products_have_norm_one_with_a_silent_nonlinearity(dtype):
    # b = 0 (the paper's initialisation): modReLU passes z through, every step Jacobian is W
    model = make_model("urnn", CopyTask(delay=54, n_copy=3), 12)
    np.testing.assert_allclose(spectral_norms_by_lag(model, dtype=dtype), 1.0, rtol=0, atol=1e-5)


def test_jacobian_products_change_norm_with_a_bias():
    # a control for the test above: b != 0 stretches or cuts the phase directions
    model = make_model("urnn", CopyTask(delay=54, n_copy=3), 12)
    with torch.no_grad():
        model.cell.modrelu_bias.fill_(-0.5)
    assert spectral_norms_by_lag(model)[-1] < 0.5


def test_large_sizes_unroll_the_factors_on_a_cpu(monkeypatch):
    # above DENSE_MAX_UNITS complex units the dense W costs more than the FFT factors: the fast path
    # unrolls the factors in the complex domain instead, and its hidden states and gradients are
    # those of the dense path and of the plain recurrence (recur, unrolled by the model)
    task = CopyTask(delay=4, n_copy=2)
    batch = task.sample(3, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = make_model("urnn", task, 16).double()
    with torch.no_grad():  # some units active, some not: both branches of modReLU
        model.cell.modrelu_bias.uniform_(-0.5, 0.5)
    inputs = batch.inputs.double()

    def states_and_grads(hidden):
        model.zero_grad()
        task.loss(model.readout(hidden), batch).backward()
        return hidden.detach(), [p.grad.clone() for p in model.parameters()]

    dense = states_and_grads(model.cell.fast_hidden_states(inputs, True))
    plain = states_and_grads(torch.stack(model.unroll(inputs).h, dim=1))
    monkeypatch.setattr("seqmem.cells.urnn.DENSE_MAX_UNITS", 7)  # this cell has 8 complex units
    factored = states_and_grads(model.cell.fast_hidden_states(inputs, True))
    for reference in (dense, plain):
        torch.testing.assert_close(factored[0], reference[0], rtol=1e-12, atol=1e-14)
        for got, expected in zip(factored[1], reference[1], strict=True):
            torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)


def test_trains_and_is_probed():
    result = trained_and_probed("urnn", optimizer="rmsprop", orthogonal_lr=1e-4)
    assert result.config.to_dict()["orthogonal_lr"] == 1e-4  # recorded with the run
    assert set(result.probes["quantity"]) == PROBED  # no gradient bound: modReLU' is unbounded here
    assert {"cell.phases", "cell.reflections", "cell.permutation"} <= set(result.state_dict)


def test_step_jacobian_at_a_zero_pre_activation_is_autograds_zero():
    # zero state and zero input: z = 0, where modReLU's output and its derivative are 0 (a
    # positive bias must not turn on the 1 + b / |z| stretch there)
    cell = make_cell("urnn", 3, 6).double()
    with torch.no_grad():
        cell.modrelu_bias.fill_(0.3)
    x_proj, state = torch.zeros(2, 6, dtype=torch.float64), (torch.zeros(2, 6, dtype=torch.float64),)
    step = Transition(x_proj, state, *cell.recur(x_proj, state))
    assert not dense(cell.step_jacobian(step)).any()
    assert not jacrev_of_recur(cell, x_proj, state).any()
