"""Parsing eps values ('8/255', '0.03', lists) and converting the paper's normalized-space eps.

eps is always used in pixel units (images in [0, 1]). The paper's values (0.06, 0.12, 0.3) were
most likely given on normalized tensors ((x - mean) / std, ImageNet mean and std); a
normalized-space eps e equals a per-channel pixel eps e * std.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import torch

from defendr_cli.core.errors import InputError
from defendr_cli.core.models.normalize import IMAGENET_STD

EPS_SPACES = ("pixel", "normalized")

# An eps (or step size) as an attack takes it, in pixel units: one float for every channel, or a
# per-channel tensor of shape (3,) (a normalized-space eps converted by `normalized_eps_to_pixel`).
EpsLike = float | torch.Tensor


@dataclass(frozen=True)
class EpsValue:
    """One eps as the user gave it: `label` is the text ('8/255'), `value` the number (0.0313...)."""

    label: str
    value: float


def parse_eps(text: str | float, option: str = "--eps") -> float:
    """'0.03' -> 0.03, '8/255' -> 0.03137..., 0.1 -> 0.1. Negative, NaN, infinite or unparsable:
    InputError naming `option` (the flag the value came from)."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        raw = str(text).strip()
        try:
            value = float(Fraction(raw.replace(" ", ""))) if "/" in raw else float(raw)
        except (ValueError, ZeroDivisionError) as exc:
            raise InputError(f"cannot read {option} '{text}': give a number like 0.03 or a fraction like 8/255") from exc
    if not value >= 0.0 or value == float("inf"):
        raise InputError(f"{option} must be a finite number >= 0, got '{text}'")
    return value


def parse_eps_list(text: str, option: str = "--eps") -> list[EpsValue]:
    """'0.06,0.12,8/255' -> [EpsValue('0.06', 0.06), ...]; duplicates (by value) are an InputError."""
    items = [part.strip() for part in str(text).split(",")]
    if not items or any(not part for part in items):
        raise InputError(f"cannot read {option} list '{text}': give values separated by commas, e.g. 0.06,0.12,8/255")
    values = [EpsValue(part.replace(" ", ""), parse_eps(part, option)) for part in items]
    seen: set[float] = set()
    for eps in values:
        if eps.value in seen:
            raise InputError(f"eps {eps.label} is given twice in '{text}'")
        seen.add(eps.value)
    return values


def normalized_eps_to_pixel(eps: float, std: tuple[float, ...] | torch.Tensor = IMAGENET_STD) -> torch.Tensor:
    """A normalized-space eps -> per-channel pixel eps, shape (3,) float32: eps * std."""
    return float(eps) * torch.as_tensor(std, dtype=torch.float32)


def eps_in_pixels(eps: float, space: str) -> float | torch.Tensor:
    """eps given in `space` ('pixel' or 'normalized') -> pixel units (float, or (3,) tensor)."""
    if space == "pixel":
        return float(eps)
    if space == "normalized":
        return normalized_eps_to_pixel(eps)
    raise InputError(f"unknown eps space '{space}': use pixel or normalized")


SUSPICIOUS_PIXEL_EPS = 32 / 255


def eps_warning(label: str, value: float | torch.Tensor, space: str, *,
                normalized_option: bool = True) -> str | None:
    """A one-line warning for an eps that is legal but probably a mistake, else None.

    In pixel units an L-inf eps above 32/255 visibly destroys the image (the field uses 2/255 to
    16/255); values such as 0.06, 0.12 or 0.3 usually come from papers that gave eps on
    normalized tensors, which `--eps-space normalized` reproduces. `normalized_option`: whether
    the command has `--eps-space` (evaluate does not: its eps are pixel units only, so the
    warning suggests a pixel value instead).
    """
    largest = float(torch.as_tensor(value).max())
    if space == "pixel" and largest > SUSPICIOUS_PIXEL_EPS:
        head = f"eps {label} in pixel units is {largest * 255:.0f}/255, far above the usual 2/255..16/255; "
        if normalized_option:
            return head + "if it was given on normalized tensors (as the paper's 0.06/0.12/0.3), add --eps-space normalized"
        return head + ("this --eps is in pixel units only: give a pixel value such as 8/255 (the paper's "
                       "0.06/0.12/0.3 were on normalized tensors: make such sets with attack --eps-space normalized)")
    return None
