"""Attack tests run single-threaded: the tiny models are faster that way on a shared CPU."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_trained():
    from tests.attacks.attack_helpers import trained_tiny_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return trained_tiny_model()
    finally:
        torch.set_num_threads(threads)
