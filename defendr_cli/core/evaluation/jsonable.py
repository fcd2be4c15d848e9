"""Result values as plain JSON: what results.json stores.

`StoredEps` is an eps as a report stores it, in pixel units: a float, or a per-channel list of 3
floats (an attack takes `core.attacks.eps.EpsLike`, a float or a (3,) tensor).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

StoredEps = float | list[float]


def jsonable(value: Any) -> Any:
    """Dataclasses, tensors, arrays and numpy numbers as plain JSON values; NaN floats as None."""
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    if isinstance(value, (dict,)):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return jsonable(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(float(value)) else float(value)
    if hasattr(value, "__dataclass_fields__"):
        return jsonable(asdict(value))
    return value
