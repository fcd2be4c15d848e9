"""The eps of the adaptive evaluation: those of the cached transfer sets, then extra ones.

`LARGE_EPS` is the budget of the large-eps sanity check (64/255: accuracy must fall near 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from defendr_cli.core.attacks.eps import EpsLike
from defendr_cli.core.evaluation.jsonable import StoredEps
from defendr_cli.core.evaluation.transfer.results import AdvSetSummary

LARGE_EPS = 64 / 255


@dataclass(frozen=True)
class AdaptiveEps:
    """One eps of the sweep: label as given ('8/255') and value in pixel units (float or (3,) list)."""

    label: str
    value: StoredEps

    def as_attack_eps(self) -> EpsLike:
        """The eps as an attack takes it: a float, or a float32 (3,) tensor for a per-channel eps."""
        return torch.tensor(self.value, dtype=torch.float32) if isinstance(self.value, list) else float(self.value)


def sweep_eps(adv_sets: Sequence[AdvSetSummary], extra: Sequence = ()) -> list[AdaptiveEps]:
    """The eps of the adaptive sweep: those of `adv_sets` (a transfer result's sets), then `extra`
    (EpsValue(label, value) in pixel units), one entry per distinct value."""
    values = [AdaptiveEps(s.eps_label, s.eps) for s in adv_sets]
    values += [AdaptiveEps(e.label, e.value) for e in extra]
    unique: dict[str, AdaptiveEps] = {}
    for value in values:
        unique.setdefault(str(value.value), value)
    return list(unique.values())
