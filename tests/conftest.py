"""Shared test fixtures: everything seeded, CPU-only, tiny."""

from __future__ import annotations

import random
import shutil

import numpy as np
import pytest
import torch

from defendr_cli.core.data.prepare import prepare_synthetic
from defendr_cli.core.workspace import Workspace


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from torch seed 0; the global RNG states (torch, numpy, random) it changes
    are restored afterwards, so no test depends on the order it runs in."""
    states = torch.get_rng_state(), np.random.get_state(), random.getstate()
    torch.manual_seed(0)
    yield
    torch.set_rng_state(states[0])
    np.random.set_state(states[1])
    random.setstate(states[2])


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The suite runs tiny models, which are faster on one thread (and the CPU may be shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def workspace(tmp_path):
    return Workspace(tmp_path / "ws")


# -- clean-cache fixtures (issue 2) -----------------------------------------------------------
SYNTHETIC_FIXTURE = {"classes": 10, "per_class": 60, "split": "40,8,12", "image_size": 32, "seed": 0}
SYNTHETIC_FIXTURE_NAME = "synthetic-c10-n60-32px"


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory):
    """Path of a small synthetic clean cache shared by the session (do not modify it):
    10 classes, 32x32, train/val/test 400/80/120 (40/8/12 per class), seed 0."""
    ws = Workspace(tmp_path_factory.mktemp("synthetic-cache"))
    result = prepare_synthetic(ws, name=SYNTHETIC_FIXTURE_NAME, **SYNTHETIC_FIXTURE)
    return result.path


@pytest.fixture
def synthetic_workspace(tmp_path, synthetic_cache):
    """A fresh Workspace (per test) whose data/ holds a copy of `synthetic_cache` as its only cache."""
    ws = Workspace(tmp_path / "synthetic-ws")
    shutil.copyfile(synthetic_cache, ws.path_for("data", SYNTHETIC_FIXTURE_NAME))
    return ws
