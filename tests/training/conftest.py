"""Fixtures for training tests: a tiny synthetic clean cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.training.train_helpers import write_tiny_cache


@pytest.fixture
def tiny_cache(workspace) -> Path:
    """data/tiny.h5 in the `workspace` fixture: 3 synthetic classes, 16 px, 36/12/12 images."""
    return write_tiny_cache(workspace.path_for("data", "tiny"))
