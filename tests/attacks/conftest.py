"""Attack-test fixtures (the suite-wide conftest already runs everything on one thread)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tiny_trained():
    from tests.attacks.attack_helpers import trained_tiny_model

    return trained_tiny_model()


@pytest.fixture(scope="session")
def comparison():
    """(model, x, y): the fixed model and 200 images the torchattacks comparisons share."""
    from tests.attacks.reference_model import comparison_model

    return comparison_model()
