"""Attack-test fixtures (the suite-wide conftest already runs everything on one thread)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tiny_trained():
    from tests.attacks.attack_helpers import trained_tiny_model

    return trained_tiny_model()
