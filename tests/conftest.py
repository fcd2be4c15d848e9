"""Shared test fixtures: everything seeded, CPU-only, tiny."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The suite runs tiny models, which are faster on one thread (and the CPU may be shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def workspace(tmp_path):
    from defendr_cli.core.workspace import Workspace

    return Workspace(tmp_path / "ws")


# -- clean-cache fixtures (issue 2) -----------------------------------------------------------
SYNTHETIC_FIXTURE = {"classes": 10, "per_class": 60, "split": "40,8,12", "image_size": 32, "seed": 0}
SYNTHETIC_FIXTURE_NAME = "synthetic-c10-n60-32px"


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory):
    """Path of a small synthetic clean cache shared by the session (do not modify it):
    10 classes, 32x32, train/val/test 400/80/120 (40/8/12 per class), seed 0."""
    from defendr_cli.core.data.prepare import prepare_synthetic
    from defendr_cli.core.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("synthetic-cache"))
    result = prepare_synthetic(ws, name=SYNTHETIC_FIXTURE_NAME, **SYNTHETIC_FIXTURE)
    return result.path


@pytest.fixture
def synthetic_workspace(tmp_path, synthetic_cache):
    """A fresh Workspace (per test) whose data/ holds a copy of `synthetic_cache` as its only cache."""
    import shutil

    from defendr_cli.core.workspace import Workspace

    ws = Workspace(tmp_path / "synthetic-ws")
    shutil.copyfile(synthetic_cache, ws.path_for("data", SYNTHETIC_FIXTURE_NAME))
    return ws
