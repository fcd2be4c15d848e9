"""Shared test fixtures: everything seeded, CPU-only, tiny."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


@pytest.fixture
def workspace(tmp_path):
    from defendr_cli.core.workspace import Workspace

    return Workspace(tmp_path / "ws")
