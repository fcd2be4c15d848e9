"""eps parsing and the normalized-space -> pixel conversion."""

from __future__ import annotations

import pytest
import torch

from defendr_cli.core.attacks import EpsValue, normalized_eps_to_pixel, parse_eps, parse_eps_list
from defendr_cli.core.attacks.eps import eps_in_pixels
from defendr_cli.core.errors import InputError
from defendr_cli.core.models.normalize import IMAGENET_MEAN, IMAGENET_STD


def test_parse_eps_numbers_and_fractions():
    assert parse_eps("0.03") == 0.03
    assert parse_eps("8/255") == pytest.approx(8 / 255)
    assert parse_eps(" 4 / 255 ") == pytest.approx(4 / 255)
    assert parse_eps(0) == 0.0


@pytest.mark.parametrize("bad", ["abc", "-0.1", "1/0", "", "inf", "nan"])
def test_parse_eps_rejects_bad_values(bad):
    with pytest.raises(InputError):
        parse_eps(bad)


def test_parse_eps_list_keeps_labels_and_order():
    values = parse_eps_list("0.06,0.12, 8/255")
    assert values == [EpsValue("0.06", 0.06), EpsValue("0.12", 0.12), EpsValue("8/255", 8 / 255)]
    with pytest.raises(InputError):
        parse_eps_list("0.1,,0.2")
    with pytest.raises(InputError, match="twice"):
        parse_eps_list("0.1,0.1")


def test_normalized_eps_is_eps_times_std():
    pixel = normalized_eps_to_pixel(0.3)
    assert pixel.shape == (3,)
    assert torch.allclose(pixel, torch.tensor([0.3 * 0.229, 0.3 * 0.224, 0.3 * 0.225]))
    assert eps_in_pixels(0.1, "pixel") == 0.1
    with pytest.raises(InputError):
        eps_in_pixels(0.1, "lab")


def test_normalized_eps_matches_a_perturbation_in_normalized_space():
    """A step of eps in normalized space is a step of eps*std in pixel space."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = torch.rand(2, 3, 4, 4)
    z_step = ((x - mean) / std) + 0.12
    pixel_step = x + normalized_eps_to_pixel(0.12).view(1, 3, 1, 1)
    assert torch.allclose(z_step * std + mean, pixel_step, atol=1e-6)
