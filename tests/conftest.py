"""Shared test set-up: a headless matplotlib backend and deterministic torch on CPU."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_torch():
    # Tests that forget to seed still get a fixed global RNG, so failures reproduce.
    torch.manual_seed(0)
    yield
