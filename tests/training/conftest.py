"""Fixtures for training tests: a tiny synthetic clean cache, one thread per test process."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.training.train_helpers import write_tiny_cache


@pytest.fixture
def tiny_cache(workspace) -> Path:
    """data/tiny.h5 in the `workspace` fixture: 3 synthetic classes, 16 px, 36/12/12 images."""
    return write_tiny_cache(workspace.path_for("data", "tiny"))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run faster on one thread, and the CPU is shared with other test runs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
