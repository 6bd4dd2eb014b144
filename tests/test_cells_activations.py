"""The nonlinearities (seqmem/cells/activations.py) against their formulas, and the hand-written
backpropagation through time (seqmem/cells/rnn.py, ``_RNNSequence``) through the modReLUs, bias
included, against autograd through the same recurrence and against finite differences."""

import math

import numpy as np
import pytest
import torch

from seqmem.cells.activations import COMPLEX_MODRELU, MODRELU
from seqmem.cells.rnn import _RNNSequence


def test_modrelu_is_sign_times_relu_of_modulus_plus_bias():
    z = torch.tensor([[-2.0, -0.3, 0.0, 0.2, 1.5]], dtype=torch.float64)
    b = torch.tensor([0.5, 0.5, 0.5, -0.5, -2.0], dtype=torch.float64)
    expected = np.sign(z.numpy()) * np.maximum(np.abs(z.numpy()) + b.numpy(), 0)  # [-2.5, -0.8, 0, 0, 0]
    np.testing.assert_array_equal(MODRELU(z, b).numpy(), expected)
    in_place = z.clone()
    MODRELU.activate_(in_place, b)
    np.testing.assert_array_equal(in_place.numpy(), expected)


def test_complex_modrelu_is_the_papers():
    z = np.array([[0.6 + 0.8j, -3.0 + 4.0j, 0.0, 0.1 - 0.1j]])
    b = np.array([0.5, -1.0, 0.3, -0.5])
    modulus = np.abs(z)
    expected = np.where(modulus + b >= 0, (modulus + b) * z / np.where(modulus > 0, modulus, 1), 0)
    pre = torch.from_numpy(np.concatenate([z.real, z.imag], axis=1))
    bias = torch.from_numpy(b)
    in_place = pre.clone()
    COMPLEX_MODRELU.activate_(in_place, bias)
    for h in (COMPLEX_MODRELU(pre, bias), in_place):
        np.testing.assert_allclose(h[:, :4].numpy() + 1j * h[:, 4:].numpy(), expected, atol=1e-15)


def real_inputs(dtype):
    """Pre-activations kept away from modReLU's jump at 0 and its kink at |z| = -b: large inputs,
    a small recurrent weight, a bias of both signs."""
    generator = torch.Generator().manual_seed(3)
    signs = torch.randint(0, 2, (7, 2, 4), generator=generator) * 2 - 1
    projected = signs * (1.0 + torch.rand(7, 2, 4, generator=generator))
    weight = 0.1 * torch.randn(4, 4, generator=generator)
    bias = torch.tensor([0.3, -0.4, 0.05, -0.2])
    return (t.to(dtype).requires_grad_() for t in (projected, weight, bias))


def complex_inputs(dtype):
    """Moduli of the pre-activations kept away from 0 and from -b (modReLU's kinks)."""
    generator = torch.Generator().manual_seed(6)
    angle = 2 * math.pi * torch.rand(7, 2, 3, generator=generator)
    modulus = 1.0 + torch.rand(7, 2, 3, generator=generator)
    projected = torch.cat([modulus * torch.cos(angle), modulus * torch.sin(angle)], dim=-1)
    weight = 0.1 * torch.randn(6, 6, generator=generator)
    bias = torch.tensor([0.3, -0.4, 0.05])
    return (t.to(dtype).requires_grad_() for t in (projected, weight, bias))


INPUTS = {"modrelu": (MODRELU, real_inputs), "complex_modrelu": (COMPLEX_MODRELU, complex_inputs)}


def by_autograd(activation, projected, weight, bias):
    """h_t = phi(a_t + W h_{t-1}; b) for every t, unrolled with autograd."""
    h, states = torch.zeros_like(projected[0]), []
    for a in projected:
        h = activation(a + h @ weight.T, bias)
        states.append(h)
    return torch.stack(states)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(INPUTS))
def test_backward_by_hand_equals_autograd_with_the_bias(name, dtype):
    activation, inputs = INPUTS[name]
    projected, weight, bias = inputs(dtype)
    ours = _RNNSequence.apply(projected, weight, activation, bias)
    expected = by_autograd(activation, projected, weight, bias)
    upstream = torch.randn_like(expected)
    tol = {torch.float32: 1e-5, torch.float64: 1e-12}[dtype]
    torch.testing.assert_close(ours, expected, rtol=tol, atol=tol)
    for a, b in zip(
        torch.autograd.grad((ours * upstream).sum(), [projected, weight, bias]),
        torch.autograd.grad((expected * upstream).sum(), [projected, weight, bias]),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", list(INPUTS))
def test_backward_by_hand_gradcheck(name):
    activation, inputs = INPUTS[name]
    assert torch.autograd.gradcheck(
        lambda a, w, b: _RNNSequence.apply(a, w, activation, b), tuple(inputs(torch.float64))
    )
