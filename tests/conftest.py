"""Shared test set-up: a headless matplotlib backend and deterministic, single-threaded torch."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

# Tiny models gain nothing from intra-op threads, and on a 2-core machine the threads spin
# against each other (tests ran 3-10x slower with torch's default).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_torch():
    # Tests that forget to seed still get a fixed global RNG, so failures reproduce.
    torch.manual_seed(0)
    yield
