"""The transfer protocol's inputs checked and keyed: adversarial test sets against the clean cache,
models against its classes, and the prediction-cache keys of both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from defendr_cli.core.attacks.set_names import label_of_set
from defendr_cli.core.errors import MismatchError
from defendr_cli.core.evaluation.jsonable import jsonable
from defendr_cli.core.evaluation.predictions import safe_key
from defendr_cli.core.evaluation.subjects import EvalModel
from defendr_cli.core.evaluation.transfer.results import AdvSetSummary
from defendr_cli.core.io.adv_fingerprint import adv_set_fingerprint
from defendr_cli.core.models.loading import check_checkpoint_against_cache
from defendr_cli.core.runtime import Runtime

TEST_SPLIT = "test"


def describe_adv_set(info: Any) -> AdvSetSummary:
    """The fields of an AdvSetInfo a report shows (eps as a float or a per-channel list)."""
    return AdvSetSummary(
        name=info.name, attack=info.attack, eps=jsonable(info.eps), eps_label=info.eps_label,
        eps_space=info.eps_space, steps=info.steps, source_model=info.source_model, split=info.split,
        count=info.count, success_rate=info.success_rate, dtype=info.dtype,
        label=label_of_set(info) or info.name)


def check_adv_set(info: Any, cache_info: Any, labels: np.ndarray, clean_indices: np.ndarray,
                  clean_labels: np.ndarray) -> None:
    """MismatchError unless the adversarial set belongs to this clean cache's test split."""
    if info.clean_fingerprint != cache_info.fingerprint:
        raise MismatchError(
            f"adversarial set '{info.name}' was made from another clean cache (fingerprint "
            f"{info.clean_fingerprint}, this cache is {cache_info.fingerprint})",
            hint="re-run defendr attack on this cache or choose the matching --data")
    if info.split != TEST_SPLIT:
        raise MismatchError(f"adversarial set '{info.name}' is of the {info.split} split; evaluation uses test sets")
    if len(clean_indices) and (clean_indices.min() < 0 or clean_indices.max() >= len(clean_labels)):
        raise MismatchError(f"adversarial set '{info.name}' refers to test rows outside this cache's test split")
    if len(labels) and labels.max() >= cache_info.num_classes:
        raise MismatchError(f"adversarial set '{info.name}' has labels beyond this cache's "
                            f"{cache_info.num_classes} classes")
    if not np.array_equal(labels, clean_labels[clean_indices]):
        raise MismatchError(f"adversarial set '{info.name}' has labels that differ from the clean test "
                            f"split: it was made for other classes")


def check_model_classes(model: EvalModel, cache_info: Any, image: torch.Tensor, runtime: Runtime) -> None:
    """MismatchError when the model was trained on other classes or outputs another class count."""
    if model.checkpoint is not None:
        check_checkpoint_against_cache(model.checkpoint, cache_info, name=model.name)
    with torch.no_grad(), runtime.autocast():
        width = model.module(runtime.to_device(image)).shape[1]
    if width != cache_info.num_classes:
        raise MismatchError(f"model '{model.name}' outputs {width} classes, the cache has {cache_info.num_classes}")


def set_key_for_clean(cache_info: Any) -> str:
    return safe_key("clean", cache_info.fingerprint, TEST_SPLIT)


def set_key_for_adv(path: Path, info: Any) -> str:
    """Cache key of an adversarial set: its name and content fingerprint (recorded when written,
    trusted after a cheap check; see core/io/adv_fingerprint.py)."""
    return safe_key("adv", info.name, adv_set_fingerprint(path))
