"""jacobian_norms_by_lag and lyapunov_spectrum against closed forms and brute-force Jacobians."""

import math

import numpy as np
import pytest
import torch

from seqmem.analysis import jacobian_norms_by_lag, lyapunov_spectrum
from seqmem.analysis.jacobians import _spectral_norm, _square
from seqmem.cells import make_cell
from seqmem.model import SequenceModel

PRESETS = ["rnn", "relu_rnn", "irnn", "lstm", "lstm_no_forget", "gru"]


def model_for(preset, input_size=3, hidden_size=5, dtype=torch.float64):
    cell = make_cell(preset, input_size, hidden_size, memory_lag=20)
    return SequenceModel(cell, input_size, hidden_size, 2).to(dtype)


def resting_rnn(weight_hh, dtype=torch.float64):
    """tanh RNN with zero biases: with zero inputs it stays at h = 0, where tanh' = 1."""
    model = model_for("rnn", hidden_size=weight_hh.shape[0], dtype=dtype)
    with torch.no_grad():
        model.cell.weight_hh.copy_(weight_hh)
        model.cell.bias_ih.zero_()
        model.cell.bias_hh.zero_()
    return model


def scaled_orthogonal(hidden_size, scale=0.9):
    return scale * torch.linalg.qr(torch.randn(hidden_size, hidden_size, dtype=torch.float64))[0]


def brute_force_products(model, inputs):
    """Per sample and t, ds_T/ds_t as explicit products of torch.autograd.functional.jacobian
    of one step of the cell (``step``), over the full state (h) or (h, c)."""
    cell, hidden = model.cell, model.hidden_size
    size, length = inputs.shape[:2]
    products = []
    for b in range(size):
        state = tuple(s[b : b + 1] for s in cell.initial_state(size, dtype=inputs.dtype))
        jacobians = []
        for t in range(length):
            flat = torch.cat(state, dim=-1)[0]

            def step(s, x=inputs[b : b + 1, t]):
                return torch.cat(cell.step(x, tuple(s[None].split(hidden, dim=-1)))[0], dim=-1)[0]

            jacobians.append(torch.autograd.functional.jacobian(step, flat))
            state, _ = cell.step(inputs[b : b + 1, t], state)
        product, per_t = torch.eye(flat.numel(), dtype=inputs.dtype), [None] * length
        for t in range(length - 1, -1, -1):
            per_t[t] = product
            product = product @ jacobians[t]
        products.append(torch.stack(per_t))
    return torch.stack(products).detach()  # (B, L, S, S)


def norms(blocks, ord):
    return torch.linalg.matrix_norm(blocks, ord=ord).numpy()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_closed_form_scaled_orthogonal(dtype):
    # W_hh = 0.9 Q at h = 0: dh_T/dh_{T-k} = (0.9 Q)^k, whose singular values all equal 0.9^k.
    hidden, length = 8, 101
    model = resting_rnn(scaled_orthogonal(hidden), dtype)
    frame, spectra = jacobian_norms_by_lag(
        model, torch.zeros(2, length, 3, dtype=dtype), spectrum_lags=[0, 37, 100]
    )
    lag = frame["lag"].to_numpy()
    assert lag.tolist() == list(range(length))
    np.testing.assert_allclose(frame["jacobian_spectral"], 0.9**lag, rtol=1e-5, atol=0)
    np.testing.assert_allclose(frame["jacobian_frobenius"], 0.9**lag * math.sqrt(hidden), rtol=1e-5, atol=0)
    assert set(spectra["lag"]) == {0, 37, 100} and len(spectra) == 3 * 2 * hidden
    np.testing.assert_allclose(spectra["singular_value"], 0.9 ** spectra["lag"], rtol=1e-5, atol=0)


@pytest.mark.parametrize("preset", PRESETS)
def test_products_equal_brute_force_jacobians(preset):
    model = model_for(preset)
    inputs = torch.randn(3, 9, 3, dtype=torch.float64)
    frame, spectra = jacobian_norms_by_lag(model, inputs, spectrum_lags=[0, 4, 8])
    products = brute_force_products(model, inputs)  # (B, L, S, S)
    hidden = model.hidden_size
    blocks = {"jacobian": products[..., :hidden, :hidden], "cell_jacobian": products[..., hidden:, hidden:]}
    if products.shape[-1] == hidden:
        del blocks["cell_jacobian"]
        assert "cell_jacobian_spectral" not in frame
    t = frame["t"].to_numpy()
    for name, block in blocks.items():
        for kind, ord in (("spectral", 2), ("frobenius", "fro")):
            expected = norms(block, ord)[:, t]  # (B, rows)
            np.testing.assert_allclose(frame[f"{name}_{kind}"], expected.mean(axis=0), rtol=1e-9)
            np.testing.assert_allclose(frame[f"{name}_{kind}_median"], np.median(expected, axis=0), rtol=1e-9)
        at = spectra[spectra["block"] == ("h" if name == "jacobian" else "c")]
        got = at.pivot_table(index=["lag", "sample"], columns="index", values="singular_value")
        assert sorted(set(got.index.get_level_values("lag"))) == [0, 4, 8]
        last = block.shape[1] - 1
        expected = torch.stack([torch.linalg.svdvals(block[b, last - lag]) for lag, b in got.index]).numpy()
        # singular values far below the largest one are only accurate to rounding relative to it
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12 * expected.max())


def _spread(values, size=48, seed=0):
    """A (size, size) matrix with singular values ``values`` (padded with zeros)."""
    generator = torch.Generator().manual_seed(seed)
    u, v = (
        torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=torch.float64))[0] for _ in "uv"
    )
    sigma = torch.zeros(size, dtype=torch.float64)
    sigma[: len(values)] = torch.as_tensor(values, dtype=torch.float64)
    return (u * sigma) @ v.T


SPECTRA = {
    "dominant": ([5.0, 1.0, 0.5, 0.1], True),  # power iteration certifies it
    "rank_one": ([2.0], True),
    # lambda_1 < trace / 2 but well separated: the trace of G^2q certifies it, no LAPACK
    "spread_tail": ([3.0, 1.5] + [1.0] * 30, True),
    "flat": ([1.0] * 48, False),  # lambda_1 < trace / 2: LAPACK decides
    "near_degenerate": ([1.0, 1.0 - 1e-7, 0.3], False),
    "zero": ([], False),
}


@pytest.mark.parametrize("name", SPECTRA)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_spectral_norm_is_certified_or_falls_back(name, dtype, monkeypatch):
    values, certifiable = SPECTRA[name]
    matrix = _spread(values).to(dtype)[None]
    if certifiable:  # the certified path must not need the eigen-decomposition
        monkeypatch.setattr(torch.linalg, "eigvalsh", lambda *_: pytest.fail("fell back to eigvalsh"))
    start = torch.full((1, 48), 48**-0.5, dtype=torch.float64)
    norm, _ = _spectral_norm(matrix, torch.linalg.matrix_norm(matrix, dtype=torch.float64), start)
    expected = torch.linalg.matrix_norm(matrix.double(), ord=2)
    rtol = 2 * torch.finfo(dtype).eps if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(norm, expected, rtol=rtol, atol=1e-300)


@pytest.mark.parametrize(
    "values",
    [[2.0, 1.9] + [0.0] * 30, [2.0, 1.9] + [0.5] * 30],  # power iteration's case, the squarings' case
    ids=["two_directions", "spread_tail"],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_spectral_norm_is_not_fooled_by_a_start_on_the_second_direction(values, dtype):
    # started exactly on the second singular direction, power iteration sits on sigma_2 with zero
    # residual; the certificates (theta > trace / 2, theta > the tr(G^2q) bound) must refuse it
    u, _ = torch.linalg.qr(
        torch.randn(32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    )
    matrix = ((u * torch.tensor(values, dtype=torch.float64)) @ u.T).to(dtype)
    norm, _ = _spectral_norm(
        matrix[None], torch.linalg.matrix_norm(matrix, dtype=torch.float64)[None], u[:, 1][None]
    )
    expected = torch.linalg.matrix_norm(matrix.double(), ord=2)
    np.testing.assert_allclose(
        norm, [expected], rtol=2 * torch.finfo(dtype).eps if dtype == torch.float32 else 1e-12
    )


@pytest.mark.parametrize(
    "values, useful",
    # a flat spectrum's worst case grows the relative error 2 sqrt(n) per squaring (and is
    # left to LAPACK); with a dominant direction it stays near float32's epsilon
    [([1.0] * 64, 1.0), ([3.0, 1.5] + [1.0] * 40, 1e-3), ([2.0, 1.0, 0.5, 0.25], 1e-4)],
    ids=["flat", "spread", "decaying"],
)
def test_squaring_error_bound_covers_float32_rounding(values, useful):
    # the certificate's bound on tr(G^2q) is only as good as the tracked rounding error of the
    # float32 powers: against float64 powers of the same G it must hold, and stay useful
    gram = _spread(values, size=64)
    gram = gram @ gram.T / torch.linalg.matrix_norm(gram).square()  # trace 1
    power = gram.float()[None]
    error = torch.linalg.matrix_norm(power.double() - gram).item()
    exact, c = gram, torch.ones(1, dtype=torch.float64)
    for _ in range(4):
        power, factor, error = _square(power, torch.linalg.matrix_norm(power).double(), error)
        exact, c = exact @ exact, c.square() / factor
        actual = torch.linalg.matrix_norm(power.double() - exact / c)
        assert (actual <= error).all() and (error < useful).all(), (actual, error)


def test_spectral_norm_near_degenerate_top_over_a_spread_tail():
    # sigma_2 / sigma_1 = 1 - 1e-4 over a spread tail, in float32: the squarings' bound must not
    # claim a gap the rounding of G^q hides; whatever path it takes, the value must be sigma_1
    values = [1.0, 1.0 - 1e-4] + [0.7] * 40
    matrix = _spread(values, size=64).float()[None]
    start = torch.full((1, 64), 64**-0.5, dtype=torch.float64)
    norm, _ = _spectral_norm(matrix, torch.linalg.matrix_norm(matrix, dtype=torch.float64), start)
    np.testing.assert_allclose(
        norm, torch.linalg.matrix_norm(matrix.double(), ord=2), rtol=2 * torch.finfo(torch.float32).eps
    )


@pytest.mark.parametrize("preset", ["rnn", "lstm", "gru"])
def test_long_products_spectral_norms_equal_svd(preset):
    # long enough (and wide enough) that most lags take the certified power-iteration path
    torch.manual_seed(1)
    model = model_for(preset, hidden_size=16, dtype=torch.float32)
    inputs = torch.randn(2, 30, 3)
    frame = jacobian_norms_by_lag(model, inputs, dtype=torch.float64)
    products = brute_force_products(model.double(), inputs.double())
    expected = norms(products[..., :16, :16], 2)[:, frame["t"].to_numpy()]
    np.testing.assert_allclose(frame["jacobian_spectral"], expected.mean(axis=0), rtol=1e-9)


def test_lstm_cell_path_is_the_forget_gate_product():
    # Input gate shut (bias -60), forget gate set by its bias alone (its weights zero): the c rows
    # of every step Jacobian are [0, diag(f)], so dc_T/dc_{T-k} = diag(sigmoid(b_f)^k).
    hidden, length = 6, 40
    model = model_for("lstm", hidden_size=hidden)
    forget_bias = torch.linspace(-1.0, 3.0, hidden, dtype=torch.float64)
    with torch.no_grad():
        for p in (model.cell.weight_ih, model.cell.weight_hh, model.cell.bias_ih, model.cell.bias_hh):
            p[hidden : 2 * hidden] = 0.0
        model.cell.bias_hh[hidden : 2 * hidden] = forget_bias
        model.cell.bias_ih[:hidden] = -60.0
        model.cell.bias_hh[:hidden] = 0.0
    frame = jacobian_norms_by_lag(model, torch.randn(3, length, 3, dtype=torch.float64))
    lag = frame["lag"].to_numpy()[:, None]
    powers = torch.sigmoid(forget_bias).numpy()[None, :] ** lag  # (lags, units)
    np.testing.assert_allclose(frame["cell_jacobian_spectral"], powers.max(axis=1), rtol=1e-9)
    np.testing.assert_allclose(frame["cell_jacobian_frobenius"], np.sqrt((powers**2).sum(axis=1)), rtol=1e-9)
    np.testing.assert_allclose(frame["forget_product"], powers.mean(axis=1), rtol=1e-9)


def test_norms_survive_float32_underflow():
    # 0.3^100 = 5e-53 is far below float32's smallest number; the rescaled product keeps it.
    model = resting_rnn(scaled_orthogonal(4, scale=0.3), torch.float32)
    frame = jacobian_norms_by_lag(model, torch.zeros(1, 101, 3))
    np.testing.assert_allclose(frame["jacobian_spectral"], 0.3 ** frame["lag"], rtol=1e-5, atol=0)


def test_spectral_can_be_left_out():
    model = model_for("lstm")
    frame = jacobian_norms_by_lag(model, torch.randn(2, 5, 3, dtype=torch.float64), spectral=False)
    assert not any("spectral" in column for column in frame.columns)
    assert {"jacobian_frobenius", "cell_jacobian_frobenius", "forget_product"} <= set(frame.columns)


@pytest.mark.parametrize("k", [1, 4, 8])
def test_lyapunov_linear_scaled_orthogonal(k):
    model = resting_rnn(scaled_orthogonal(8))
    frame = lyapunov_spectrum(model, torch.zeros(3, 50, 3, dtype=torch.float64), k)
    assert frame["k"].tolist() == list(range(k))
    np.testing.assert_allclose(frame["exponent"], math.log(0.9), rtol=1e-9)
    np.testing.assert_allclose(frame["std"], 0.0, atol=1e-12)


@pytest.mark.parametrize("k", [3, 6])
def test_lyapunov_diagonal_gives_logs_of_the_entries(k):
    entries = torch.tensor([0.3, -1.1, 0.9, -0.6, 0.75, 0.45], dtype=torch.float64)
    model = resting_rnn(torch.diag(entries))
    frame = lyapunov_spectrum(model, torch.zeros(2, 400, 3, dtype=torch.float64), k, warmup=200)
    expected = np.sort(np.log(entries.abs().numpy()))[::-1][:k]
    np.testing.assert_allclose(frame["exponent"], expected, atol=1e-6)


@pytest.mark.filterwarnings("error")
def test_lyapunov_singular_jacobian_gives_minus_infinity_without_warnings():
    # a zero row of W_hh: that direction is forgotten in one step, exponent log 0 = -inf
    model = resting_rnn(torch.diag(torch.tensor([0.5, 0.0, 0.25], dtype=torch.float64)))
    frame = lyapunov_spectrum(model, torch.zeros(3, 50, 3, dtype=torch.float64), 3, warmup=10)
    np.testing.assert_allclose(frame["exponent"][:2], np.log([0.5, 0.25]), atol=1e-12)
    last = frame.iloc[2]
    assert np.isneginf([last["exponent"], last["median"], last["q10"], last["q90"]]).all()


@pytest.mark.parametrize("preset", ["lstm", "gru"])
def test_lyapunov_leading_exponent_matches_the_jacobian_growth_rate(preset):
    # Independent route to the top exponent: the growth rate of ||ds_T/ds_0|| (brute force).
    model = model_for(preset)
    inputs = torch.randn(1, 60, 3, dtype=torch.float64)
    products = brute_force_products(model, inputs)
    frame = lyapunov_spectrum(model, inputs, 1)
    leading = torch.log(torch.linalg.matrix_norm(products[0, 0], ord=2)).item() / 59
    # both estimate the same limit; at T = 60 they agree to the O(1/T) transient
    assert abs(frame["exponent"].iloc[0] - leading) < 0.05


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda m, x: lyapunov_spectrum(m, x, 11), "k"),
        (lambda m, x: lyapunov_spectrum(m, x, 2, warmup=6), "warmup"),
        (lambda m, x: jacobian_norms_by_lag(m, x, spectrum_lags=[6]), "spectrum_lags"),
        (lambda m, x: jacobian_norms_by_lag(m, x[..., :2]), "inputs"),
    ],
)
def test_invalid_arguments(call, field):
    with pytest.raises(ValueError, match=field):
        call(model_for("lstm"), torch.randn(2, 6, 3, dtype=torch.float64))
