"""The state Jacobians behind the decay: exact products dh_T/dh_t and Lyapunov exponents.

One mechanism serves both: the closed-form Jacobian J_t = ds_t/ds_{t-1} of each step of the
flat state s = (h) or (h, c), evaluated along the trajectory the model actually ran, applied
from the left to accumulate the products P_t = ds_T/ds_t = P_{t+1} J_{t+1} (one batched matmul
per step) and from the right to push the Lyapunov frame forward, J_t Q_{t-1}.  The closed forms
(below, per cell) are exactly the derivatives autograd takes of ``cell.recur``; the tests check
them against ``torch.autograd.functional.jacobian``.  An LSTM's J_t has diagonal c columns
(dc_t/dc_{t-1} = diag(f), dh_t/dc_{t-1} = diag(o tanh'(c_t) f)), so only its h columns are
stored dense: P J costs one (2H x 2H) @ (2H x H) matmul per sample instead of a 2H-cube.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from seqmem.analysis.common import as_dtype, lag_frame, nan_quantiles
from seqmem.cells import GRUCell, LSTMCell, RNNCell
from seqmem.model import SequenceModel
from tasks.base import check_int

__all__ = ["jacobian_norms_by_lag", "lyapunov_spectrum", "forget_product"]

# J_t as (dense, diagonal): dense (B, S, H) is the h columns ds_t/dh_{t-1}; diagonal (B, S) or None
# holds the LSTM's c columns, diag(diagonal[:, :H]) above diag(diagonal[:, H:])
StepJacobian = tuple[torch.Tensor, torch.Tensor | None]


def _check_inputs(model: SequenceModel, inputs: torch.Tensor) -> None:
    if inputs.dim() != 3 or inputs.shape[-1] != model.input_size or inputs.shape[1] < 1:
        raise ValueError(
            f"inputs shape={tuple(inputs.shape)} is invalid: must be (batch, length >= 1, {model.input_size})"
        )


def _step_jacobians(
    model: SequenceModel, inputs: torch.Tensor
) -> tuple[Callable[[int], StepJacobian], dict[str, torch.Tensor]]:
    """``jacobian(t)``: ds_t/ds_{t-1} of step t (0-based) of ``model`` run on ``inputs``, per
    sample, and the gates (B, L, H) of that run."""
    cell = model.cell
    with torch.no_grad():
        _, unrolled = model(inputs, return_states=True)
        initial = cell.initial_state(inputs.shape[0], device=inputs.device, dtype=inputs.dtype)
        h = torch.stack([initial[0], *unrolled.h], dim=1)  # h[:, t] = state before step t
        c = None if unrolled.c is None else torch.stack([initial[1], *unrolled.c], dim=1)
    gates = unrolled.gates
    weights = cell.weight_hh.detach().split(cell.hidden_size, dim=0)  # per gate (H, H)

    def rows(scale: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return scale[..., None] * weight  # diag(scale) @ weight

    def jacobian(t: int) -> StepJacobian:
        with torch.no_grad():
            if isinstance(cell, RNNCell):  # diag(phi'(a)) W_hh, phi' from the output h_t
                after = h[:, t + 1]
                slope = 1 - after.square() if cell.nonlinearity == "tanh" else (after > 0).to(after.dtype)
                return rows(slope, weights[0]), None
            if isinstance(cell, GRUCell):  # h_t = n + z (h - n), n = tanh(x_n + r (W_n h + b_n))
                before, r, z, n = h[:, t], gates["r"][:, t], gates["z"][:, t], gates["n"][:, t]
                w_r, w_z, w_n = weights
                h_n = F.linear(before, w_n, cell.bias_hh.detach().split(cell.hidden_size)[2])
                through_n = (1 - z) * (1 - n.square())
                dense = (
                    torch.diag_embed(z)
                    + rows(through_n * h_n * r * (1 - r), w_r)
                    + rows((before - n) * z * (1 - z), w_z)
                    + rows(through_n * r, w_n)
                )
                return dense, None
            if isinstance(cell, LSTMCell):  # c_t = f c + i g, h_t = o tanh(c_t)
                i, f, g, o = (gates[k][:, t] for k in "ifgo")
                w_i, w_f, w_g, w_o = weights
                squash = torch.tanh(c[:, t + 1])
                to_h = o * (1 - squash.square())  # dh_t/dc_t
                # a no-forget LSTM reports f = 1, so f (1 - f) drops its (zero) f rows too
                cell_h = (
                    rows(c[:, t] * f * (1 - f), w_f)
                    + rows(g * i * (1 - i), w_i)
                    + rows(i * (1 - g.square()), w_g)
                )
                hidden_h = rows(squash * o * (1 - o), w_o) + to_h[..., None] * cell_h
                return torch.cat([hidden_h, cell_h], dim=1), torch.cat([to_h * f, f], dim=-1)
        raise TypeError(f"cell={type(cell).__name__} has no closed-form Jacobian")

    return jacobian, gates


def _pull(product: torch.Tensor, jacobian: StepJacobian) -> torch.Tensor:
    """product @ J for ``product`` (B, R, S)."""
    dense, diagonal = jacobian
    out = product @ dense
    if diagonal is None:
        return out
    hidden = dense.shape[-1]
    to_c = (
        product[..., :hidden] * diagonal[:, None, :hidden]
        + product[..., hidden:] * diagonal[:, None, hidden:]
    )
    return torch.cat([out, to_c], dim=-1)


def _push(jacobian: StepJacobian, frame: torch.Tensor) -> torch.Tensor:
    """J @ frame for ``frame`` (B, S, k)."""
    dense, diagonal = jacobian
    hidden = dense.shape[-1]
    out = dense @ frame[:, :hidden]
    if diagonal is None:
        return out
    return out + diagonal[..., None] * frame[:, hidden:].repeat(1, 2, 1)


def forget_product(forget: torch.Tensor) -> torch.Tensor:
    """Per sample and t, the mean over units of prod_{s=t+1}^{T} f_s, i.e. dc_T/dc_t along the
    cell-state path alone (1 at t = T); ``forget`` is (B, L, H).  In log space, float64."""
    logs = torch.log(forget.to(torch.float64))
    later = logs.flip(1).cumsum(1).flip(1) - logs  # sum over s > t
    return later.exp().mean(dim=-1)


def _spectral_norm(
    blocks: torch.Tensor, frobenius: torch.Tensor, start: torch.Tensor, max_iter: int = 30
) -> tuple[torch.Tensor, torch.Tensor]:
    """Largest singular values of (N, m, n) matrices with Frobenius norms ``frobenius`` (N,),
    each certified to the relative precision the blocks carry (their dtype's machine epsilon,
    at least 1e-12, on its square), and each one's left power iterate (N, m), the warm start for
    the next call.

    Power iteration on G = A A^T / ||A||_F^2 (trace 1) from ``start``: theta = u^T G u is a
    lower bound on lambda_1, and once theta > 1/2 every other eigenvalue is at most
    1 - lambda_1 < 1/2 < theta, so the Kato-Temple bound lambda_1 - theta <= |G u - theta u|^2 /
    (2 theta - 1) certifies it.  Along a Jacobian product the left singular vector barely moves
    from lag to lag and the product soon has one dominant direction, so a few matrix-vector
    products certify most blocks; the rest (short lags, flat spectra) get LAPACK's symmetric
    eigen-decomposition, exact and about 30x the cost, in float64.
    """
    rtol = max(torch.finfo(blocks.dtype).eps, 1e-12)
    frobenius = frobenius.double().clamp_min(torch.finfo(torch.float64).tiny)
    if frobenius.min() < 1e-30:  # float32 entries this small lose digits: work in float64
        blocks = blocks.double()
    # matrix-vector products in the blocks' precision (scaled vectors, not a scaled copy of the
    # blocks), every sum of squares in float64
    inverse = (1 / frobenius)[:, None]
    u, previous = start, torch.zeros_like(frobenius)
    for _ in range(max_iter):
        w = (blocks.mT @ (u * inverse).to(blocks.dtype)[..., None])[..., 0]
        theta = w.double().square().sum(-1)
        gu = (blocks @ w[..., None])[..., 0].double() * inverse
        residual = (gu - theta[:, None] * u).square().sum(-1)
        gap = 2 * theta - 1
        certified = (gap > 0) & (residual <= rtol * theta * gap)
        stalled = (gap <= 0) & (theta - previous <= 1e-3 * theta)  # converging below 1/2
        length = torch.linalg.vector_norm(gu, dim=-1, keepdim=True)
        u = torch.where(length > 0, gu / length.clamp_min(torch.finfo(gu.dtype).tiny), u)
        if bool((certified | stalled).all()):
            break
        previous = theta
    rest = ~certified
    if bool(rest.any()):
        exact = blocks[rest].double() / frobenius[rest][:, None, None]
        theta = theta.masked_scatter(rest, torch.linalg.eigvalsh(exact @ exact.mT)[:, -1].clamp_min(0))
    return theta.sqrt() * frobenius, u


def jacobian_norms_by_lag(
    model: SequenceModel,
    inputs: torch.Tensor,
    *,
    spectrum_lags: Sequence[int] | None = None,
    spectral: bool = True,
    dtype: torch.dtype | None = None,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Norms of the exact Jacobian products from the last step T = L - 1 back to every step t.

    P_T = I and P_t = P_{t+1} J_{t+1}, J_{t+1} = ds_{t+1}/ds_t per sample, for the full state
    s = h (RNN, GRU) or s = (h, c) (LSTM, a 2H x 2H product).  Reported per t (lag = T - t),
    batch mean and median/q10/q90 (see ``lag_frame``):
      jacobian_spectral, jacobian_frobenius            ||dh_T/dh_t|| (the h block of P_t)
      cell_jacobian_spectral, cell_jacobian_frobenius  ||dc_T/dc_t|| (LSTM: the c block)
      forget_product                                   LSTM: mean over units of prod_{s=t+1}^T f_s
    Each step the product is rescaled to unit norm and the scale kept as a float64 logarithm, so
    the norms are exact far below float32's underflow.  The spectral norms are certified to the
    dtype's precision by warm-started power iteration (see ``_spectral_norm``); ``spectral=False``
    leaves them out.  With ``spectrum_lags`` the singular
    values of dh_T/dh_t (block 'h') and dc_T/dc_t (block 'c') at those lags come back too, as a
    second frame (columns t, lag, sample, block, index, singular_value): ``(norms, spectra)``.
    """
    _check_inputs(model, inputs)
    model = as_dtype(model, dtype)
    inputs = inputs.to(model.readout.weight.dtype)
    batch, length = inputs.shape[:2]
    last = length - 1
    spectrum_at = sorted({int(lag) for lag in spectrum_lags or ()})
    for lag in spectrum_at:
        check_int("spectrum_lags", lag, 0, last)
    jacobian, gates = _step_jacobians(model, inputs)
    hidden = model.hidden_size
    size = hidden * len(model.cell.state_names)
    blocks = {"jacobian": slice(0, hidden)}
    if size == 2 * hidden:
        blocks["cell_jacobian"] = slice(hidden, size)
    kinds = ("spectral", "frobenius") if spectral else ("frobenius",)
    norms = {
        f"{name}_{kind}": inputs.new_empty(batch, length, dtype=torch.float64)
        for name in blocks
        for kind in kinds
    }
    spectra = []
    product = torch.eye(size, dtype=inputs.dtype, device=inputs.device).expand(batch, size, size)
    log_scale = inputs.new_zeros(batch, dtype=torch.float64)
    # power-iteration warm starts: the left singular vectors, one per sample and block
    starts = dict.fromkeys(blocks, inputs.new_full((batch, hidden), hidden**-0.5, dtype=torch.float64))
    with torch.no_grad():
        for t in range(last, -1, -1):
            if t < last:
                product = _pull(product, jacobian(t + 1))
                scale = torch.linalg.vector_norm(product, dim=(1, 2))
                product = product / scale.clamp_min(torch.finfo(product.dtype).tiny)[:, None, None]
                log_scale += torch.log(scale.to(torch.float64))
            factor = torch.exp(log_scale)
            for name, rows in blocks.items():
                block = product[:, rows, rows]
                frobenius = torch.linalg.matrix_norm(block).double()
                norms[f"{name}_frobenius"][:, t] = frobenius * factor
                if spectral:
                    spectral_norm, starts[name] = _spectral_norm(block, frobenius, starts[name])
                    norms[f"{name}_spectral"][:, t] = spectral_norm * factor
                if last - t in spectrum_at:
                    values = (torch.linalg.svdvals(block).double() * factor[:, None]).cpu()
                    spectra.append(_spectrum_rows(values, t, last - t, "h" if name == "jacobian" else "c"))
    if "f" in gates:
        norms["forget_product"] = forget_product(gates["f"])
    frame = lag_frame(norms, torch.full((batch,), last))
    if spectrum_lags is None:
        return frame
    columns = ["t", "lag", "sample", "block", "index", "singular_value"]
    spectrum = pd.concat(spectra, ignore_index=True) if spectra else pd.DataFrame(columns=columns)
    return frame, spectrum.sort_values(["block", "lag", "sample", "index"], ignore_index=True)


def _spectrum_rows(values: torch.Tensor, t: int, lag: int, block: str) -> pd.DataFrame:
    batch, count = values.shape
    return pd.DataFrame(
        {
            "t": t,
            "lag": lag,
            "sample": np.repeat(np.arange(batch), count),
            "block": block,
            "index": np.tile(np.arange(count), batch),
            "singular_value": values.reshape(-1).numpy(),
        }
    )


def lyapunov_spectrum(
    model: SequenceModel,
    inputs: torch.Tensor,
    k: int,
    *,
    warmup: int = 0,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> pd.DataFrame:
    """The leading ``k`` Lyapunov exponents of the state dynamics driven by ``inputs``.

    QR re-orthonormalisation (Engelken, Wolf & Abbott 2020): Q_0 a random orthonormal S x k
    frame (seeded by ``seed``, the same for every sample), Q_t R_t = J_t Q_{t-1} for every step,
    exponent_i = mean over steps t > ``warmup`` of log|R_t[i, i]|, per step (nats; the decay
    factor per step is exp(exponent)).  S is the full state: H, or 2H for an LSTM's (h, c).
    Per sample the exponents are sorted descending; columns: k (0 = largest), exponent (batch
    mean), std, median, q10, q90 over the batch.
    """
    _check_inputs(model, inputs)
    model = as_dtype(model, dtype)
    inputs = inputs.to(model.readout.weight.dtype)
    length = inputs.shape[1]
    size = model.hidden_size * len(model.cell.state_names)
    check_int("k", k, 1, size)
    check_int("warmup", warmup, 0, length - 1)
    check_int("seed", seed, 0)
    jacobian, _ = _step_jacobians(model, inputs)
    generator = torch.Generator().manual_seed(seed)
    frame = torch.linalg.qr(torch.randn(size, k, generator=generator, dtype=torch.float64))[0]
    frame = frame.to(inputs).expand(inputs.shape[0], size, k)
    total = inputs.new_zeros(inputs.shape[0], k, dtype=torch.float64)
    with torch.no_grad():
        for t in range(length):
            frame, r = torch.linalg.qr(_push(jacobian(t), frame))
            if t >= warmup:
                total += torch.log(torch.diagonal(r, dim1=-2, dim2=-1).abs().double())
    exponents = (total / (length - warmup)).sort(dim=1, descending=True).values.cpu().numpy()
    median, q10, q90 = nan_quantiles(exponents, [0.5, 0.1, 0.9])
    with np.errstate(invalid="ignore"):  # a singular Jacobian's -inf exponent has no spread
        std = exponents.std(axis=0, ddof=1) if exponents.shape[0] > 1 else np.full(k, math.nan)
    return pd.DataFrame(
        {
            "k": np.arange(k),
            "exponent": exponents.mean(axis=0),
            "std": std,
            "median": median,
            "q10": q10,
            "q90": q90,
        }
    )
