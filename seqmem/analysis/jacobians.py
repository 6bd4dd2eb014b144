"""The state Jacobians behind the decay: exact products dh_T/dh_t and Lyapunov exponents.

One mechanism serves both: the Jacobian J_t = ds_t/ds_{t-1} of each step of the flat state
s = (h) or (h, c), evaluated along the trajectory the model actually ran (each cell's
``step_jacobian``: a closed form per cell family, or torch.func's for a cell that only writes
``recur``), applied from the left to accumulate the products P_t = ds_T/ds_t = P_{t+1} J_{t+1}
(one batched matmul per step and dense column block) and from the right to push the Lyapunov
frame forward, J_t Q_{t-1}.  An LSTM's J_t has diagonal c columns (dc_t/dc_{t-1} = diag(f),
dh_t/dc_{t-1} = diag(o tanh'(c_t) f)), so only its h columns are stored dense: P J costs two
(2H x H) @ (H x H) matmuls per sample instead of a 2H-cube.  Spectral norms of the products'
blocks are certified, not estimated: power iteration where one direction dominates, bounds from
traces of repeated squares where the spectrum is spread, LAPACK where it is flat.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from seqmem.analysis.common import (
    as_dtype,
    check_batch,
    lag_rows,
    last_steps,
    model_dtype,
    statistics_rows,
)
from seqmem.analysis.scheme import scheme_rows, tidy
from seqmem.cells.base import StepJacobian, Transition
from seqmem.model import SequenceModel
from tasks.base import Batch, Task, check_int

__all__ = ["jacobian_norms_by_lag", "lyapunov_spectrum"]


def _step_jacobians(
    model: SequenceModel, inputs: torch.Tensor
) -> Callable[[int, torch.Tensor | None], StepJacobian]:
    """``jacobian(t, scale)``: ds_t/ds_{t-1} of step t (0-based) of ``model`` run on ``inputs``,
    per sample, times ``scale`` (B,) when given."""
    cell = model.cell
    with torch.no_grad():
        _, unrolled = model(inputs, return_states=True)
        projected = cell.project_input(inputs).unbind(dim=1)
        initial = cell.initial_state(inputs.shape[0], device=inputs.device, dtype=inputs.dtype)
        # states[t]: the state before step t, as views of one stacked tensor per block
        blocks = [
            torch.stack([first, *after], dim=1).unbind(dim=1)
            for first, after in zip(initial, unrolled.blocks.values(), strict=True)
        ]
        states = list(zip(*blocks, strict=True))
    gates_by_step = {name: gate.unbind(dim=1) for name, gate in unrolled.gates.items()}

    def jacobian(t: int, scale: torch.Tensor | None = None) -> StepJacobian:
        step_gates = {name: by_step[t] for name, by_step in gates_by_step.items()}
        return cell.step_jacobian(Transition(projected[t], states[t], states[t + 1], step_gates), scale)

    return jacobian


def _pull(columns: tuple[torch.Tensor, ...], jacobian: StepJacobian) -> tuple[torch.Tensor, ...]:
    """P @ J for P given by its column blocks ``columns`` (B, R, H) each, one per state block."""
    out = []
    for j, (rows, diagonal) in enumerate(zip(jacobian.columns, jacobian.diagonal, strict=True)):
        if diagonal:  # sum_i P_i diag(d_ij), own block first: the order the reported numbers were summed in
            block = columns[j] * rows[j][:, None]
            for i, (column, scale) in enumerate(zip(columns, rows, strict=True)):
                if i != j:
                    block.addcmul_(column, scale[:, None])
        else:  # sum_i P_i J_ij
            block = torch.bmm(columns[0], rows[0])
            for column, dense in zip(columns[1:], rows[1:], strict=True):
                block.baddbmm_(column, dense)
        out.append(block)
    return tuple(out)


def _push(jacobian: StepJacobian, frame: torch.Tensor) -> torch.Tensor:
    """J @ frame for ``frame`` (B, S, k)."""
    parts = frame.split_with_sizes(jacobian.sizes, dim=1)
    out = []
    for i in range(len(parts)):  # row block i: sum_j J_ij frame_j
        total = None
        for rows, diagonal, part in zip(jacobian.columns, jacobian.diagonal, parts, strict=True):
            term = rows[i][..., None] * part if diagonal else rows[i] @ part
            total = term if total is None else total + term
        out.append(total)
    return torch.cat(out, dim=1)


def _working(blocks: torch.Tensor, frobenius: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The blocks in the precision their certificate works in, 1 / frobenius (float64), and the
    relative tolerance of that precision (its machine epsilon, at least 1e-12).  ``frobenius``
    must be ||A||_F summed in float64: the certificates rely on trace(G) = 1."""
    frobenius = frobenius.double().clamp_min(torch.finfo(torch.float64).tiny)
    if frobenius.min() < 1e-30:  # float32 entries this small lose digits: work in float64
        blocks = blocks.double()
    return blocks, 1 / frobenius, max(torch.finfo(blocks.dtype).eps, 1e-12)


def _rayleigh(
    blocks: torch.Tensor, inverse: torch.Tensor, u: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """theta = u^T G u, G u and |G u - theta u|^2 for G = A A^T * inverse^2 and unit u (..., m):
    matrix-vector products in the blocks' precision (scaled vectors, not a scaled copy of the
    blocks), every sum of squares in float64."""
    w = (u * inverse[..., None]).to(blocks.dtype)[..., None, :] @ blocks  # (A^T u)^T
    theta = torch.linalg.vector_norm(w, dim=(-2, -1), dtype=torch.float64).square()
    gu = (w @ blocks.mT)[..., 0, :].double() * inverse[..., None]
    return theta, gu, torch.linalg.vector_norm(gu - theta[..., None] * u, dim=-1).square()


def _apply(matrices: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """matrices^T @ vectors for (..., m, m) and (..., m), as row vector @ matrix: MKL's batched
    matrix @ column vector takes 2-4x longer at these sizes."""
    return (vectors.to(matrices.dtype)[..., None, :] @ matrices)[..., 0, :]


def _power_iteration(
    blocks: torch.Tensor, frobenius: torch.Tensor, start: torch.Tensor, max_iter: int = 7
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For (..., m, n) matrices A with Frobenius norms ``frobenius`` (...): the largest
    eigenvalue theta of G = A A^T / ||A||_F^2 (trace 1), the left power iterate u (..., m), and
    whether theta is certified to the relative precision the blocks carry (see ``_working``).

    Power iteration on G from ``start``: theta = u^T G u is a lower bound on lambda_1, and once
    theta > 1/2 every other eigenvalue is at most 1 - lambda_1 < 1/2 < theta, so the Kato-Temple
    bound lambda_1 - theta <= |G u - theta u|^2 / (2 theta - 1) certifies it.  Along a Jacobian
    product the left singular vector barely moves from lag to lag and the product soon has one
    dominant direction, so a few matrix-vector products certify most blocks; the rest (short
    lags, spread spectra) are for ``_certify_by_squaring``.
    """
    blocks, inverse, rtol = _working(blocks, frobenius)
    u, previous = start, torch.zeros_like(inverse)
    for _ in range(max_iter):
        theta, gu, residual = _rayleigh(blocks, inverse, u)
        gap = 2 * theta - 1
        certified = (gap > 0) & (residual <= rtol * theta * gap)
        stalled = (gap <= 0) & (theta - previous <= 1e-3 * theta)  # converging below 1/2
        u = _unit(gu, u)
        if bool((certified | stalled).all()):
            break
        previous = theta
    return theta, u, certified


def _unit(vectors: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """``vectors`` (..., m) scaled to unit length; a zero vector is replaced by ``fallback``."""
    length = torch.linalg.vector_norm(vectors, dim=-1, keepdim=True)
    return torch.where(length > 0, vectors / length.clamp_min(torch.finfo(vectors.dtype).tiny), fallback)


def _certify_by_squaring(
    blocks: torch.Tensor, frobenius: torch.Tensor, start: torch.Tensor, squarings: int = 3
) -> torch.Tensor:
    """lambda_1 of G = A A^T / ||A||_F^2 for (N, m, n) blocks A that power iteration could not
    certify (lambda_1 below half the trace), certified as ``_power_iteration`` certifies.

    The trace of a power bounds the second eigenvalue: sum_i lambda_i^p = tr(G^p), so
    lambda_2 <= (tr(G^p) - theta^p)^(1/p) for any theta <= lambda_1.  Repeated squaring (one
    matmul each, a tenth of an eigen-decomposition at H = 128 in float32) gives M ~ G^q / c,
    held at unit Frobenius norm, with tr(G^2q) = ||G^q||_F^2 <= c^2 (||M||_F + e)^2, where e
    bounds the rounding carried so far (gamma_n = n u / (1 - n u) per matmul, propagated
    through each squaring), and M is a power-iteration operator worth q steps.  So a dominant
    eigenvalue over a spread tail is certified by Kato-Temple with the gap theta - lambda_2-bound
    after a few squarings.  Flat or near-degenerate tops, which no bound short of the full
    spectrum separates, get LAPACK's symmetric eigen-decomposition.
    """
    blocks, inverse, rtol = _working(blocks, frobenius)
    unit = torch.finfo(blocks.dtype).eps / 2
    size = blocks.shape[-1]
    gamma = size * unit / (1 - size * unit)
    theta = torch.zeros_like(inverse)
    todo, u = torch.arange(len(blocks), device=blocks.device), start.double()  # not yet certified
    scale = inverse.to(blocks.dtype)  # (A scale)(A scale)^T = G / c, c = 1 / (scale ||A||_F)^2
    power = (blocks * scale[:, None, None]) @ (blocks * scale[:, None, None]).mT
    c = (scale.double() / inverse).square().reciprocal()
    error = (gamma + 3 * unit) * 1.01  # ||M - G / c||_F: the scaling's and the matmul's rounding
    q = 1
    for round_ in range(squarings + 1):
        norm = torch.linalg.matrix_norm(power).double()
        for _ in range(6):  # M^T (the rounding of a symmetric M) serves as well
            u = _unit(_apply(power, u).double(), u)
        estimate, gu, residual = _rayleigh(blocks, inverse[todo], u)
        moment = c.square() * (norm + error).square()  # >= tr(G^2q)
        second = (moment - estimate ** (2 * q)).clamp_min(0) ** (1 / (2 * q))
        gap = estimate - torch.minimum(second, 1 - estimate)
        certified = (gap > 0) & (residual <= rtol * estimate * gap)
        theta[todo] = estimate
        if bool(certified.all()):
            return theta
        if bool(certified.any()):
            keep = (~certified).nonzero()[:, 0]
            todo, blocks, power, u, c, norm = (x[keep] for x in (todo, blocks, power, u, c, norm))
            error = error if isinstance(error, float) else error[keep]
        if round_ == squarings:
            break
        power, factor, error = _square(power, norm, error)
        c, q = c.square() / factor, 2 * q
    exact = blocks.double() * inverse[todo][:, None, None]
    theta[todo] = torch.linalg.eigvalsh(exact @ exact.mT)[:, -1].clamp_min(0)
    return theta


def _square(
    power: torch.Tensor, norm: torch.Tensor, error: torch.Tensor | float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One squaring of M ~ X / c (N, n, n) with ||M||_F = ``norm`` and ||M - X / c||_F <= ``error``:
    M' = M M / s at unit Frobenius norm (s = ||M M||_F, as rounded), the factor 1 / s (so that
    M' ~ X^2 / (c^2 s)), and the bound on ||M' - X^2 / (c^2 s)||_F: the matmul's rounding
    gamma_n ||M||_F^2 plus the propagated ||M M - (X/c)^2||_F <= e (2 ||M||_F + e), over s, plus
    the rescaling's rounding."""
    unit = torch.finfo(power.dtype).eps / 2
    gamma = power.shape[-1] * unit / (1 - power.shape[-1] * unit)
    square = power @ power
    rescale = torch.linalg.matrix_norm(square).double().reciprocal().to(square.dtype)
    factor = rescale.double()
    error = factor * (gamma * norm.square() + error * (2 * norm + error)) + 1.01 * unit
    return square * rescale[:, None, None], factor, error


def _spectral_norm(
    blocks: torch.Tensor, frobenius: torch.Tensor, start: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Certified largest singular values of (N, m, n) ``blocks`` with Frobenius norms
    ``frobenius`` (N,), and the left power iterates (N, m): ``_power_iteration``, then
    ``_certify_by_squaring`` for the blocks it leaves uncertified."""
    theta, u, certified = _power_iteration(blocks, frobenius, start)
    rest = ~certified
    if bool(rest.any()):
        theta = theta.masked_scatter(rest, _certify_by_squaring(blocks[rest], frobenius[rest], u[rest]))
    return theta.sqrt() * frobenius.double(), u


class _DeferredSpectralNorms:
    """Spectral norms of the blocks of a Jacobian product, written into ``out`` (K, B, L).

    Blocks power iteration certifies are written at once; the others are copied aside and
    certified ``chunk`` at a time, as one batch: at 2-3 uncertified blocks per lag the
    per-operation overhead of squaring them lag by lag would cost more than the matmuls.
    """

    def __init__(self, out: torch.Tensor, chunk: int = 16) -> None:
        self.out, self.chunk, self.pending = out, chunk, []

    def add(
        self,
        blocks: torch.Tensor,
        frobenius: torch.Tensor,
        factor: torch.Tensor,
        t: int,
        start: torch.Tensor,
        wanted: torch.Tensor | None,
    ) -> torch.Tensor:
        """``blocks`` (K, B, H, H) of step t, the product's magnitudes ``factor`` (B,) beside
        their Frobenius norms (K, B); only the samples ``wanted`` (B,) are certified (the others'
        entries stay estimates; None: all).  Returns the warm starts for the next step (K, B, H)."""
        theta, u, certified = _power_iteration(blocks, frobenius, start)
        magnitude = frobenius.double() * factor
        self.out[:, :, t] = theta.sqrt() * magnitude
        rest = ~certified if wanted is None else ~certified & wanted
        if bool(rest.any()):
            which, sample = rest.nonzero(as_tuple=True)
            self.pending.append((blocks[rest], frobenius[rest], u[rest], magnitude[rest], which, sample, t))
            if sum(len(entry[0]) for entry in self.pending) >= self.chunk:
                self.flush()
        return u

    def flush(self) -> None:
        if not self.pending:
            return
        blocks, frobenius, u, magnitude, which, sample = (
            torch.cat([entry[k] for entry in self.pending]) for k in range(6)
        )
        t = torch.cat([torch.full_like(entry[5], entry[6]) for entry in self.pending])
        self.out[which, sample, t] = _certify_by_squaring(blocks, frobenius, u).sqrt() * magnitude
        self.pending = []


def jacobian_norms_by_lag(
    model: SequenceModel,
    batch: Batch,
    task: Task,
    *,
    spectrum_lags: Sequence[int] | None = None,
    spectral: bool = True,
    dtype: torch.dtype | None = None,
) -> pd.DataFrame:
    """Norms of the exact Jacobian products from each sequence's last step T back to every step t.

    P_T = I and P_t = P_{t+1} J_{t+1}, J_{t+1} = ds_{t+1}/ds_t per sample, for the full state
    s = h (RNN, GRU) or s = (h, c) (LSTM, a 2H x 2H product); T is the sequence's length - 1,
    so padding steps never enter a product.  Quantities, per lag = T - t and stat (mean,
    median, q10, q90 over the n sequences that reach the lag; t the median step there):
      jacobian_spectral, jacobian_frobenius            ||dh_T/dh_t|| (the h block of P_t)
      cell_jacobian_spectral, cell_jacobian_frobenius  ||dc_T/dc_t|| (cells with a cell state)
    The product is kept divided by its Frobenius norm (the division folded into the next step's
    Jacobian) and the scale kept as a float64 logarithm, so the norms are exact far below
    float32's underflow.  The spectral norms are certified to the dtype's precision (see
    ``_power_iteration`` and ``_certify_by_squaring``); ``spectral=False`` leaves them out.  With
    ``spectrum_lags``, every singular value of dh_T/dh_t (quantity jacobian_singular_value) and
    dc_T/dc_t (cell_jacobian_singular_value) at those lags, per sequence: rows with t, lag,
    sample and k (0 = largest), stat missing.  ``task`` only checks the batch.
    """
    check_batch(model, batch, task)
    model = as_dtype(model, dtype)
    last_step = last_steps(batch).to(batch.inputs.device)
    last = int(last_step.max())
    inputs = batch.inputs[:, : last + 1].to(model_dtype(model))
    size = inputs.shape[0]
    spectrum_at = sorted({int(lag) for lag in spectrum_lags or ()})
    for lag in spectrum_at:
        check_int("spectrum_lags", lag, 0, last)
    jacobian = _step_jacobians(model, inputs)
    # the per-step bookkeeping in Python, so the loop's tensor work is the products alone
    last_steps_list = last_step.tolist()
    shortest = min(last_steps_list)
    spectrum_samples: dict[int, list[int]] = {}  # step t: the samples with a spectrum lag there
    for sample, end in enumerate(last_steps_list):
        for lag in spectrum_at:
            if lag <= end:
                spectrum_samples.setdefault(end - lag, []).append(sample)
    hidden = model.hidden_size
    count = len(model.cell.state_names)  # state blocks: (h) or (h, c)
    names = ["jacobian", "cell_jacobian"][:count]
    frobenius = inputs.new_empty(count, size, last + 1, dtype=torch.float64)
    spectral_norms = _DeferredSpectralNorms(torch.empty_like(frobenius)) if spectral else None
    spectra = []
    # P_t by column blocks, ds_T/dh_t (and ds_T/dc_t), each (B, S, H); P_T = I
    identity = torch.eye(count * hidden, dtype=inputs.dtype, device=inputs.device)
    columns = tuple(block.expand(size, -1, -1).clone() for block in identity.split(hidden, dim=1))
    state_rows = [slice(k * hidden, (k + 1) * hidden) for k in range(count)]
    log_scale = inputs.new_zeros(size, dtype=torch.float64)
    # power-iteration warm starts: the left singular vectors, per block and sample
    starts = inputs.new_full((count, size, hidden), hidden**-0.5, dtype=torch.float64)
    with torch.no_grad():
        for t in range(last, -1, -1):
            # every (row block, column block) pair: all scale P; the diagonal ones are reported and
            # summed in float64, so that G = A A^T / ||A||_F^2 has trace 1 as the certificates assume
            squares = torch.stack(
                [
                    torch.linalg.vector_norm(
                        block[:, rows], dim=(1, 2), dtype=torch.float64 if k == r else None
                    )
                    .double()
                    .square()
                    for k, block in enumerate(columns)
                    for r, rows in enumerate(state_rows)
                ]
            ).view(count, count, size)
            factor = torch.exp(log_scale)
            frobenius[:, :, t] = squares.diagonal().T.sqrt()
            blocks = torch.stack([block[:, rows] for block, rows in zip(columns, state_rows, strict=True)])
            if spectral_norms is not None:
                wanted = None if t <= shortest else last_step >= t
                starts = spectral_norms.add(blocks, frobenius[:, :, t], factor, t, starts, wanted)
            frobenius[:, :, t] *= factor
            if t in spectrum_samples:
                at = torch.tensor(spectrum_samples[t], device=inputs.device)
                # the reported blocks only: a cell may carry more state than (h, c)
                values = (torch.linalg.svdvals(blocks[: len(names), at]).double() * factor[at, None]).cpu()
                lags, at = torch.tensor([last_steps_list[s] - t for s in spectrum_samples[t]]), at.cpu()
                spectra += [_spectrum_rows(v, t, lags, at, n) for v, n in zip(values, names, strict=True)]
            if t > 0:  # P_{t-1} = P_t J_t, divided by ||P_t||_F (the divisor as rounded is kept)
                inverse = squares.sum((0, 1)).sqrt().clamp_min(torch.finfo(inputs.dtype).tiny).reciprocal()
                inverse = inverse.to(inputs.dtype)
                pulled = _pull(columns, jacobian(t, inverse))
                if t > shortest:  # step t lies past some sequence's end: J_t = I for it
                    keep = (last_step < t)[:, None, None]
                    pulled = tuple(
                        torch.where(keep, old * inverse[:, None, None], new)
                        for old, new in zip(columns, pulled, strict=True)
                    )
                columns = pulled
                log_scale -= torch.log(inverse.double())
    norms = {f"{name}_frobenius": frobenius[k] for k, name in enumerate(names)}
    if spectral_norms is not None:
        spectral_norms.flush()
        norms |= {f"{name}_spectral": spectral_norms.out[k] for k, name in enumerate(names)}
    singular = tidy(spectra)
    singular = singular.sort_values(["quantity", "lag", "sample", "k"], ignore_index=True)
    return tidy([lag_rows(norms, last_step), singular])


def _spectrum_rows(
    values: torch.Tensor, t: int, lag: torch.Tensor, sample: torch.Tensor, name: str
) -> pd.DataFrame:
    """Rows of the singular values ``values`` (N, S) of block ``name`` at step t, per sample."""
    count = values.shape[1]
    return scheme_rows(
        f"{name}_singular_value",
        values.reshape(-1).numpy(),
        t=t,
        lag=np.repeat(lag.numpy(), count),
        k=np.tile(np.arange(count), len(values)),
        sample=np.repeat(sample.numpy(), count),
    )


def lyapunov_spectrum(
    model: SequenceModel,
    batch: Batch,
    task: Task,
    k: int,
    *,
    warmup: int = 0,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> pd.DataFrame:
    """The leading ``k`` Lyapunov exponents of the state dynamics driven by the batch's inputs.

    QR re-orthonormalisation (Engelken, Wolf & Abbott 2020): Q_0 a random orthonormal S x k
    frame (seeded by ``seed``, the same for every sample), Q_t R_t = J_t Q_{t-1} for every step,
    exponent_i = mean over steps warmup <= t <= T of log|R_t[i, i]|, per step (nats; the decay
    factor per step is exp(exponent)), T each sequence's last step (padding never enters).  S
    is the full state: H, or 2H for an LSTM's (h, c).  Per sample the exponents are sorted
    descending.  Rows (quantity ``lyapunov``): per k (0 = largest) the mean, median, q10, q90
    and std over the n sequences; t and lag missing.  ``task`` only checks the batch.
    """
    check_batch(model, batch, task)
    model = as_dtype(model, dtype)
    last_step = last_steps(batch).to(batch.inputs.device)
    length = int(last_step.max()) + 1
    inputs = batch.inputs[:, :length].to(model_dtype(model))
    size = model.hidden_size * len(model.cell.state_names)
    check_int("k", k, 1, size)
    check_int("warmup", warmup, 0, int(last_step.min()))
    check_int("seed", seed, 0)
    jacobian = _step_jacobians(model, inputs)
    generator = torch.Generator().manual_seed(seed)
    frame = torch.linalg.qr(torch.randn(size, k, generator=generator, dtype=torch.float64))[0]
    frame = frame.to(inputs).expand(inputs.shape[0], size, k)
    total = inputs.new_zeros(inputs.shape[0], k, dtype=torch.float64)
    with torch.no_grad():
        for t in range(length):
            pushed, r = torch.linalg.qr(_push(jacobian(t), frame))
            running = last_step >= t  # a sequence that has ended keeps its frame (J_t = I)
            frame = torch.where(running[:, None, None], pushed, frame)
            if t >= warmup:
                logs = torch.log(torch.diagonal(r, dim1=-2, dim2=-1).abs().double())
                total += torch.where(running[:, None], logs, 0.0)
    steps = (last_step + 1 - warmup)[:, None]
    exponents = (total / steps).sort(dim=1, descending=True).values.cpu().numpy()  # (B, k)
    index = np.arange(k)
    with np.errstate(invalid="ignore"):  # a singular Jacobian's -inf exponent has no spread
        std = exponents.std(axis=0, ddof=1) if exponents.shape[0] > 1 else np.full(k, math.nan)
    spread = scheme_rows("lyapunov", std, stat="std", k=index, n=len(exponents))
    return tidy(
        [statistics_rows("lyapunov", exponents, np.ones_like(exponents, dtype=bool), k=index), spread]
    )
