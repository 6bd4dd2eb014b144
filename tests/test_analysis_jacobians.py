"""jacobian_norms_by_lag and lyapunov_spectrum against closed forms and brute-force Jacobians."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from analysis_checks import ANY_TASK, batch_of, curve

from seqmem.analysis import forget_product_by_lag, jacobian_norms_by_lag, lyapunov_spectrum
from seqmem.analysis.jacobians import _spectral_norm, _square
from seqmem.cells import cell_names, make_cell
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


def jacobians(model, inputs, lengths=None, **options):
    return jacobian_norms_by_lag(model, batch_of(inputs, lengths), ANY_TASK, **options)


def lyapunov(model, inputs, k, lengths=None, **options):
    return lyapunov_spectrum(model, batch_of(inputs, lengths), ANY_TASK, k, **options)


def singular_values(frame, block):
    """The singular values of one block by (lag, sample) x k."""
    rows = frame[frame["quantity"] == f"{block}_singular_value"]
    assert rows["stat"].isna().all() and rows["n"].isna().all()
    return rows.pivot_table(index=["lag", "sample"], columns="k", values="value")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_closed_form_scaled_orthogonal(dtype):
    # W_hh = 0.9 Q at h = 0: dh_T/dh_{T-k} = (0.9 Q)^k, whose singular values all equal 0.9^k.
    hidden, length = 8, 101
    model = resting_rnn(scaled_orthogonal(hidden), dtype)
    frame = jacobians(model, torch.zeros(2, length, 3, dtype=dtype), spectrum_lags=[0, 37, 100])
    spectral = curve(frame, "jacobian_spectral")
    lag = spectral.index.to_numpy()
    assert lag.tolist() == list(range(length))
    np.testing.assert_allclose(spectral, 0.9**lag, rtol=1e-5, atol=0)
    frobenius = curve(frame, "jacobian_frobenius")
    np.testing.assert_allclose(frobenius, 0.9**lag * math.sqrt(hidden), rtol=1e-5, atol=0)
    spectra = singular_values(frame, "jacobian")
    assert spectra.shape == (3 * 2, hidden)
    assert set(spectra.index.get_level_values("lag")) == {0, 37, 100}
    expected = 0.9 ** spectra.index.get_level_values("lag").to_numpy(np.float64)[:, None]
    np.testing.assert_allclose(spectra, np.broadcast_to(expected, spectra.shape), rtol=1e-5, atol=0)


@pytest.mark.parametrize("preset", PRESETS)
def test_products_equal_brute_force_jacobians(preset):
    model = model_for(preset)
    inputs = torch.randn(3, 9, 3, dtype=torch.float64)
    frame = jacobians(model, inputs, spectrum_lags=[0, 4, 8])
    products = brute_force_products(model, inputs)  # (B, L, S, S)
    hidden = model.hidden_size
    blocks = {"jacobian": products[..., :hidden, :hidden], "cell_jacobian": products[..., hidden:, hidden:]}
    if products.shape[-1] == hidden:
        del blocks["cell_jacobian"]
        assert not frame["quantity"].str.startswith("cell_").any()
    for name, block in blocks.items():
        for kind, ord in (("spectral", 2), ("frobenius", "fro")):
            t = curve(frame, f"{name}_{kind}", by="t").index.to_numpy()
            assert t.tolist() == list(range(9))
            expected = norms(block, ord)[:, t]  # (B, steps)
            np.testing.assert_allclose(
                curve(frame, f"{name}_{kind}", by="t"), expected.mean(axis=0), rtol=1e-9
            )
            median = curve(frame, f"{name}_{kind}", "median", by="t")
            np.testing.assert_allclose(median, np.median(expected, axis=0), rtol=1e-9)
        got = singular_values(frame, name)
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
    spectral = curve(jacobians(model, inputs, dtype=torch.float64), "jacobian_spectral", by="t")
    products = brute_force_products(model.double(), inputs.double())
    expected = norms(products[..., :16, :16], 2)[:, spectral.index.to_numpy()]
    np.testing.assert_allclose(spectral, expected.mean(axis=0), rtol=1e-9)


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
    inputs = torch.randn(3, length, 3, dtype=torch.float64)
    frame = jacobians(model, inputs)
    lag = curve(frame, "cell_jacobian_spectral").index.to_numpy()[:, None]
    powers = torch.sigmoid(forget_bias).numpy()[None, :] ** lag  # (lags, units)
    np.testing.assert_allclose(curve(frame, "cell_jacobian_spectral"), powers.max(axis=1), rtol=1e-9)
    frobenius = curve(frame, "cell_jacobian_frobenius")
    np.testing.assert_allclose(frobenius, np.sqrt((powers**2).sum(axis=1)), rtol=1e-9)
    forget = forget_product_by_lag(model, batch_of(inputs), ANY_TASK)
    np.testing.assert_allclose(curve(forget, "forget_product"), powers.mean(axis=1), rtol=1e-9)


def test_norms_survive_float32_underflow():
    # 0.3^100 = 5e-53 is far below float32's smallest number; the rescaled product keeps it.
    model = resting_rnn(scaled_orthogonal(4, scale=0.3), torch.float32)
    spectral = curve(jacobians(model, torch.zeros(1, 101, 3)), "jacobian_spectral")
    np.testing.assert_allclose(spectral, 0.3 ** spectral.index.to_numpy(np.float64), rtol=1e-5, atol=0)


def test_spectral_can_be_left_out():
    model = model_for("lstm")
    frame = jacobians(model, torch.randn(2, 5, 3, dtype=torch.float64), spectral=False)
    assert set(frame["quantity"]) == {"jacobian_frobenius", "cell_jacobian_frobenius"}


@pytest.mark.parametrize("k", [1, 4, 8])
def test_lyapunov_linear_scaled_orthogonal(k):
    model = resting_rnn(scaled_orthogonal(8))
    frame = lyapunov(model, torch.zeros(3, 50, 3, dtype=torch.float64), k)
    assert curve(frame, "lyapunov", by="k").index.tolist() == list(range(k))
    assert frame[["t", "lag", "sample"]].isna().all().all() and (frame["n"] == 3).all()
    np.testing.assert_allclose(curve(frame, "lyapunov", by="k"), math.log(0.9), rtol=1e-9)
    np.testing.assert_allclose(curve(frame, "lyapunov", "std", by="k"), 0.0, atol=1e-12)


@pytest.mark.parametrize("k", [3, 6])
def test_lyapunov_diagonal_gives_logs_of_the_entries(k):
    entries = torch.tensor([0.3, -1.1, 0.9, -0.6, 0.75, 0.45], dtype=torch.float64)
    model = resting_rnn(torch.diag(entries))
    frame = lyapunov(model, torch.zeros(2, 400, 3, dtype=torch.float64), k, warmup=200)
    expected = np.sort(np.log(entries.abs().numpy()))[::-1][:k]
    np.testing.assert_allclose(curve(frame, "lyapunov", by="k"), expected, atol=1e-6)


@pytest.mark.filterwarnings("error")
def test_lyapunov_singular_jacobian_gives_minus_infinity_without_warnings():
    # a zero row of W_hh: that direction is forgotten in one step, exponent log 0 = -inf
    model = resting_rnn(torch.diag(torch.tensor([0.5, 0.0, 0.25], dtype=torch.float64)))
    frame = lyapunov(model, torch.zeros(3, 50, 3, dtype=torch.float64), 3, warmup=10)
    np.testing.assert_allclose(curve(frame, "lyapunov", by="k")[:2], np.log([0.5, 0.25]), atol=1e-12)
    last = frame[frame["k"] == 2].set_index("stat")["value"]
    assert np.isneginf(last[["mean", "median", "q10", "q90"]]).all()


@pytest.mark.parametrize("preset", ["lstm", "gru"])
def test_lyapunov_leading_exponent_matches_the_jacobian_growth_rate(preset):
    # Independent route to the top exponent: the growth rate of ||ds_T/ds_0|| (brute force).
    model = model_for(preset)
    inputs = torch.randn(1, 60, 3, dtype=torch.float64)
    products = brute_force_products(model, inputs)
    frame = lyapunov(model, inputs, 1)
    leading = torch.log(torch.linalg.matrix_norm(products[0, 0], ord=2)).item() / 59
    # both estimate the same limit; at T = 60 they agree to the O(1/T) transient
    assert abs(curve(frame, "lyapunov", by="k").iloc[0] - leading) < 0.05


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda m, x: lyapunov(m, x, 11), "k"),
        (lambda m, x: lyapunov(m, x, 2, warmup=6), "warmup"),
        (lambda m, x: lyapunov(m, x, 2, [6, 3], warmup=3), "warmup"),  # the shorter has no step left
        (lambda m, x: jacobians(m, x, spectrum_lags=[6]), "spectrum_lags"),
        (lambda m, x: jacobians(m, x[..., :2]), "batch.inputs"),
        (lambda m, x: jacobian_norms_by_lag(m, x, ANY_TASK), "batch"),
        (lambda m, x: lyapunov_spectrum(m, batch_of(x), None, 2), "task"),
    ],
)
def test_invalid_arguments(call, field):
    with pytest.raises(ValueError, match=field):
        call(model_for("lstm"), torch.randn(2, 6, 3, dtype=torch.float64))


def per_sequence_expectation(model, inputs, lengths, measure):
    """By lag from each sequence's last step: the mean over the sequences that reach the lag of
    ``measure(products)`` (per t), each sequence run alone, cut to its own length."""
    by_lag = {}
    for b, length in enumerate(lengths):
        values = measure(brute_force_products(model, inputs[b : b + 1, :length]))[0]  # (length,)
        for t, value in enumerate(values):
            by_lag.setdefault(length - 1 - t, []).append(value)
    return pd.Series({lag: np.mean(v) for lag, v in sorted(by_lag.items())})


@pytest.mark.parametrize("preset", ["rnn", "lstm", "gru"])
def test_products_of_sequences_of_different_lengths_start_at_their_own_end(preset):
    # every sequence's product runs from its own last step; wild inputs in its padding change
    # nothing, and a lag counts only the sequences that reach it
    model = model_for(preset)
    lengths = [9, 6, 4]
    inputs = torch.randn(3, 9, 3, dtype=torch.float64)
    wild = inputs.clone()
    for b, length in enumerate(lengths):
        wild[b, length:] = 50.0
    frame = jacobians(model, wild, lengths, spectrum_lags=[0, 5])
    for kind, ord in (("spectral", 2), ("frobenius", "fro")):
        expected = per_sequence_expectation(
            model, inputs, lengths, lambda p, ord=ord: norms(p[..., :5, :5], ord)
        )
        np.testing.assert_allclose(curve(frame, f"jacobian_{kind}"), expected, rtol=1e-9)
    rows = frame[(frame["quantity"] == "jacobian_spectral") & (frame["stat"] == "mean")]
    assert rows["n"].tolist() == [3] * 4 + [2] * 2 + [1] * 3
    spectra = singular_values(frame, "jacobian")
    assert spectra.index.tolist() == [(0, 0), (0, 1), (0, 2), (5, 0), (5, 1)]  # the third has no lag 5
    for (lag, b), values in spectra.iterrows():
        product = brute_force_products(model, inputs[b : b + 1, : lengths[b]])[0, lengths[b] - 1 - lag]
        np.testing.assert_allclose(values, torch.linalg.svdvals(product[:5, :5]), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("preset", cell_names())
def test_every_cell_reports_singular_values_of_its_h_and_c_blocks(preset):
    # P_T = I: at lag 0 every singular value of each reported block is 1, one per unit, for
    # sequences of any length (a cell with more state blocks than (h, c) reports those two)
    model = model_for(preset, hidden_size=4)
    frame = jacobians(model, torch.randn(2, 7, 3, dtype=torch.float64), [7, 5], spectrum_lags=[0, 3])
    names = ["jacobian", "cell_jacobian"][: len(model.cell.state_names)]
    for name in names:
        spectra = singular_values(frame, name)
        assert spectra.index.tolist() == [(0, 0), (0, 1), (3, 0), (3, 1)]
        assert spectra.shape[1] == model.hidden_size
        np.testing.assert_allclose(spectra.loc[0], 1.0, rtol=1e-12)
        assert np.isfinite(spectra.to_numpy()).all() and (spectra.loc[3].to_numpy() >= 0).all()


def test_lyapunov_of_sequences_of_different_lengths_is_the_mean_of_each_alone():
    model = model_for("lstm")
    lengths = [12, 7, 9]
    inputs = torch.randn(3, 12, 3, dtype=torch.float64)
    wild = inputs.clone()
    for b, length in enumerate(lengths):
        wild[b, length:] = -40.0
    frame = lyapunov(model, wild, 4, lengths, warmup=2)
    alone = [
        curve(lyapunov(model, inputs[b : b + 1, :length], 4, warmup=2), "lyapunov", by="k")
        for b, length in enumerate(lengths)
    ]
    np.testing.assert_allclose(curve(frame, "lyapunov", by="k"), np.mean(alone, axis=0), rtol=1e-10)
    np.testing.assert_allclose(
        curve(frame, "lyapunov", "median", by="k"), np.median(alone, axis=0), rtol=1e-10
    )
