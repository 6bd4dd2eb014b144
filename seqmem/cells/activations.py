r"""The nonlinearities of the cells of the form h_t = phi(W_ih x_t + W_hh h_{t-1} + ...), each in
the forms a cell needs: ``phi(pre, bias)`` with autograd (``recur``), and for backpropagation
through time by hand (``seqmem.cells.rnn._RNNSequence``) ``activate_`` (pre-activation -> h, in
place) and ``backpropagate_`` (dL/dh -> dL/d(pre-activation), in place, from one step's
``backward_factors``: what the derivative needs, read off the outputs h of every step at once).

    tanh, relu                 h = tanh(z), relu(z)
    modReLU (real)             h = sign(z) relu(|z| + b)              (expRNN; b per unit)
    modReLU (complex)          h = relu(|z| + b) z / |z|, 0 at z = 0  (uRNN; z, h in C^N stored as
                                                                       the real (Re, Im) halves)

The derivatives, read off h:  tanh' = 1 - h^2;  relu' = [h > 0];  real modReLU' = [h != 0] (an
indicator: the backward pass is one ``addmm`` and one multiply per step);  complex modReLU, per
unit with u = h / |h| and s = (|z| + b) / |z| = |h| / (|h| - b) as a 2 x 2 real block:
dh/dz = s I + (1 - s) u u^T (symmetric; 1 along u, s across it), 0 where h = 0.  For both
modReLUs dL/db = <u, dL/dz> per unit and step (u = sign(h) for the real one), because u is an
eigenvector of dh/dz with eigenvalue 1.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

__all__ = ["Activation", "TANH", "RELU", "MODRELU", "COMPLEX_MODRELU"]


class Activation(ABC):
    """phi with an optional per-unit bias (the modReLUs'), in its autograd and by-hand forms."""

    name: str
    derivative_bound: float = 1.0  # sup |phi'| (the Pascanu et al. bound); inf where unbounded

    @abstractmethod
    def __call__(self, pre: Tensor, bias: Tensor | None = None) -> Tensor:
        """h = phi(pre) with autograd, ``pre`` (..., H)."""

    @abstractmethod
    def activate_(self, pre: Tensor, bias: Tensor | None = None) -> None:
        """Overwrite ``pre`` (B, H) with h = phi(pre)."""

    def backward_factors(self, h: Tensor, bias: Tensor | None = None) -> tuple[Tensor, ...]:
        """What ``backpropagate_`` reads at each step, for the outputs ``h`` (L, B, H) of every step
        at once (leading dim: the step): the outputs themselves, unless an activation does better
        with its per-step work vectorised over the whole sequence before the backward loop."""
        return (h,)

    @abstractmethod
    def backpropagate_(self, grad: Tensor, *factors: Tensor) -> None:
        """Overwrite ``grad`` = dL/dh (B, H) with dL/d(pre-activation), given one step's
        ``backward_factors``."""

    def bias_grad(self, grad_pre: Tensor, h: Tensor) -> Tensor:
        """dL/db summed over every leading dim of ``grad_pre`` and ``h`` (..., H)."""
        raise ValueError(f"activation={self.name!r} is invalid here: it has no bias")

    def __repr__(self) -> str:
        return self.name


class _Tanh(Activation):
    name = "tanh"

    def __call__(self, pre: Tensor, bias: Tensor | None = None) -> Tensor:
        return torch.tanh(pre)

    def activate_(self, pre: Tensor, bias: Tensor | None = None) -> None:
        pre.tanh_()

    def slope(self, h: Tensor) -> Tensor:
        return 1 - h.square()

    def backpropagate_(self, grad: Tensor, h: Tensor) -> None:
        grad.addcmul_(grad * h, h, value=-1)  # grad (1 - h^2)


class _ReLU(Activation):
    name = "relu"

    def __call__(self, pre: Tensor, bias: Tensor | None = None) -> Tensor:
        return torch.relu(pre)

    def activate_(self, pre: Tensor, bias: Tensor | None = None) -> None:
        pre.relu_()

    def slope(self, h: Tensor) -> Tensor:
        return (h > 0).to(h.dtype)

    def backpropagate_(self, grad: Tensor, h: Tensor) -> None:
        grad.mul_(h > 0)


class _ModReLU(Activation):
    name = "modrelu"

    def __call__(self, pre: Tensor, bias: Tensor | None = None) -> Tensor:
        return torch.sign(pre) * torch.relu(pre.abs() + bias)

    def activate_(self, pre: Tensor, bias: Tensor | None = None) -> None:
        magnitude = pre.abs().add_(bias).relu_()
        pre.sign_().mul_(magnitude)

    def slope(self, h: Tensor) -> Tensor:
        return (h != 0).to(h.dtype)

    def backward_factors(self, h: Tensor, bias: Tensor | None = None) -> tuple[Tensor, ...]:
        """The indicators [h != 0] of every step, at once: one multiply per step is left."""
        return (h != 0,)

    def backpropagate_(self, grad: Tensor, active: Tensor) -> None:
        grad.mul_(active)

    def bias_grad(self, grad_pre: Tensor, h: Tensor) -> Tensor:
        return (grad_pre * h.sign()).flatten(0, -2).sum(0)


class _ComplexModReLU(Activation):
    """On (Re z, Im z) halves of the last dim; ``bias`` has one entry per complex unit."""

    name = "complex_modrelu"
    derivative_bound = float("inf")  # s = 1 + b / |z| grows without bound as |z| -> 0 (b > 0)

    @staticmethod
    def halves(x: Tensor) -> Tensor:
        """``x`` (..., 2N) as (..., 2, N): [..., 0, :] real parts, [..., 1, :] imaginary parts."""
        return x.unflatten(-1, (2, -1))

    @classmethod
    def to_complex(cls, x: Tensor) -> Tensor:
        """``x`` (..., 2N) = (Re z, Im z) as the complex z (..., N)."""
        return torch.complex(*cls.halves(x).unbind(-2))

    @staticmethod
    def to_real(z: Tensor) -> Tensor:
        """The complex ``z`` (..., N) as (Re z, Im z) (..., 2N)."""
        return torch.cat([z.real, z.imag], dim=-1)

    @staticmethod
    def on_complex(z: Tensor, bias: Tensor) -> Tensor:
        """modReLU of the complex ``z`` (..., N), with autograd."""
        modulus = z.abs()
        nonzero = modulus > 0
        # the double where keeps the gradient finite at z = 0 (where h = 0 and so is dh/dz)
        safe = torch.where(nonzero, modulus, torch.ones_like(modulus))
        return z * torch.where(nonzero, torch.relu(safe + bias) / safe, torch.zeros_like(modulus))

    def __call__(self, pre: Tensor, bias: Tensor | None = None) -> Tensor:
        return self.to_real(self.on_complex(self.to_complex(pre), bias))

    def modulus(self, x: Tensor) -> Tensor:
        """|x| per complex unit (..., N), without autograd (hypot: a norm over the size-2 dim is
        ~30x slower on the CPU)."""
        parts = self.halves(x)
        return torch.hypot(parts[..., 0, :], parts[..., 1, :])

    @staticmethod
    def positive(x: Tensor) -> Tensor:
        """``x`` with zeros (and negatives) raised to the dtype's tiny, in place: divisions by it
        then give 0 where their numerator is 0, without a ``where`` per step."""
        return x.clamp_min_(torch.finfo(x.dtype).tiny)

    def scale(self, pre: Tensor, bias: Tensor) -> Tensor:
        """s = relu(|z| + b) / |z| per unit, without autograd (at z = 0 finite but meaningless: it
        multiplies z = 0)."""
        modulus = self.positive(self.modulus(pre))
        return (modulus + bias).relu_().div_(modulus)

    def activate_(self, pre: Tensor, bias: Tensor | None = None) -> None:
        self.halves(pre).mul_(self.scale(pre, bias)[..., None, :])

    def direction(self, h: Tensor) -> Tensor:
        """u = h / |h| per unit as (..., 2, N), 0 where h = 0."""
        return self.halves(h) / self.positive(self.modulus(h))[..., None, :]

    def backward_factors(self, h: Tensor, bias: Tensor | None = None) -> tuple[Tensor, ...]:
        """u (L, B, 2, N), s and 1 - s (L, B, N) of every step: a dozen element-wise operations once
        on the whole sequence instead of at each step of the backward loop."""
        modulus = self.modulus(h)
        u = self.halves(h) / self.positive(modulus.clone())[..., None, :]
        # s = |h| / |z| with |z| = |h| - b > 0 on active units; 0 on inactive ones (|h| = 0)
        stretch = modulus / self.positive(modulus - bias)
        return u, stretch[..., None, :], 1 - stretch

    def backpropagate_(self, grad: Tensor, u: Tensor, stretch: Tensor, rest: Tensor) -> None:
        parts = self.halves(grad)
        along = (u * parts).sum(-2).mul_(rest)  # (1 - s) <u, g>
        parts.mul_(stretch).addcmul_(u, along[..., None, :])

    def bias_grad(self, grad_pre: Tensor, h: Tensor) -> Tensor:
        return (self.direction(h) * self.halves(grad_pre)).sum(-2).flatten(0, -2).sum(0)


TANH, RELU, MODRELU, COMPLEX_MODRELU = _Tanh(), _ReLU(), _ModReLU(), _ComplexModReLU()
