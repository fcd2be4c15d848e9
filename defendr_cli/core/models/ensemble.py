"""Ensemble of classifiers as one nn.Module (Defendr paper §4.4), attackable end to end.

combine="probs" (the paper's rule): every member's scores are turned into a row-normalized
probability matrix (softmax, each row sums to 1, so every member contributes equally), the
matrices are summed with optional weights, and the prediction is the argmax of the sum. forward
returns the log of the weighted mean of the members' probabilities, shape (N, K): its argmax is
the paper's prediction and its softmax is the combined distribution.

combine="logits": the weighted mean of the members' logits (N, K) is returned as-is.

Weights are non-negative, not all zero, and normalized to sum to 1 (default: equal weights).
Members take pixels (N, 3, H, W) in [0, 1]; a member that itself returns log-probabilities (a
multi-pass randomization, a nested ensemble) is handled exactly, since softmax(log p) = p.

Checkpoint kind "ensemble" (`defendr ensemble NAME --members a,b,c`):
core.models.ensemble_manifest.create_ensemble writes a small manifest (no weights of its own): config {members, weights, combine}, data (the members'
common class list and image size), provenance.parents [{role "member", name, fingerprint}].
`build_ensemble` (the 'ensemble' entry of core.models.loading.KIND_BUILDERS) reloads every member and fails with
MismatchError when a member file changed since, or MissingArtefactError when one is gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from defendr_cli.core.errors import InputError, MismatchError
from defendr_cli.core.io.checkpoint_record import Checkpoint, DataRecord
from defendr_cli.core.models.references import load_reference
from defendr_cli.core.workspace import Workspace

COMBINE_RULES = ("probs", "logits")


def normalized_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    """Weights summing to 1 (equal when None); InputError on a wrong count or bad values."""
    if count < 1:
        raise InputError("an ensemble needs at least one member")
    if weights is None:
        return [1.0 / count] * count
    values = [float(w) for w in weights]
    if len(values) != count:
        raise InputError(f"got {len(values)} weights for {count} ensemble members")
    if any(w < 0 or w != w for w in values) or sum(values) <= 0:
        raise InputError(f"ensemble weights must be non-negative and not all zero, got {values}")
    total = sum(values)
    return [w / total for w in values]


def parse_weights(text: str | None) -> list[float] | None:
    """'2,1,1' or '1/2,1/4,1/4' -> floats (None for None/empty); InputError on anything else."""
    if text is None or not text.strip():
        return None
    values = []
    for part in text.split(","):
        try:
            values.append(float(Fraction(part.strip())))
        except (ValueError, ZeroDivisionError):
            raise InputError(f"--weights must be comma-separated numbers such as 2,1,1; got '{part.strip()}'") from None
    return values


class Ensemble(nn.Module):
    """Weighted combination of member classifiers (see module docstring for the two rules)."""

    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float] | None = None,
                 combine: str = "probs", names: Sequence[str] | None = None) -> None:
        super().__init__()
        if combine not in COMBINE_RULES:
            raise InputError(f"unknown ensemble combine rule '{combine}': use one of {', '.join(COMBINE_RULES)}")
        self.members = nn.ModuleList(members)
        self.combine = combine
        self.names = list(names) if names is not None else [f"member{i}" for i in range(len(self.members))]
        self.register_buffer("weights", torch.tensor(normalized_weights(weights, len(self.members))),
                             persistent=False)

    def extra_repr(self) -> str:
        weights = ", ".join(f"{n}={w:.3g}" for n, w in zip(self.names, self.weights.tolist()))
        return f"combine={self.combine}, weights=({weights})"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [member(x).float() for member in self.members]
        if self.combine == "logits":
            return sum(w * out for w, out in zip(self.weights, outputs))
        probs = sum(w * F.softmax(out, dim=1) for w, out in zip(self.weights, outputs))
        return torch.log(probs.clamp_min(1e-12))


def _data_key(checkpoint: Checkpoint) -> tuple[list, int | None]:
    data = checkpoint.data
    return list(data.class_ids or []), (int(data.image_size) if data.image_size is not None else None)


def check_compatible(names: Sequence[str], checkpoints: Sequence[Checkpoint]) -> DataRecord:
    """The members' common `data` record; MismatchError when class lists or image sizes differ."""
    first_ids, first_size = _data_key(checkpoints[0])
    for name, checkpoint in zip(names[1:], checkpoints[1:]):
        ids, size = _data_key(checkpoint)
        if ids != first_ids:
            raise MismatchError(f"ensemble members '{names[0]}' and '{name}' were trained on different class "
                                f"lists ({len(first_ids)} vs {len(ids)} classes, or another order)")
        if size != first_size:
            raise MismatchError(f"ensemble members '{names[0]}' and '{name}' were trained on different image "
                                f"sizes ({first_size}px vs {size}px)")
    return checkpoints[0].data


def build_ensemble(checkpoint: Checkpoint, context) -> Ensemble:
    """Builder of kind 'ensemble': reload every member after checking its fingerprint.

    `context` is a core.models.loading.BuildContext (workspace, device, load).
    """
    workspace = context.workspace or Workspace.from_option(None)
    owner = f"ensemble '{checkpoint.name}'"
    references = checkpoint.parents_with_role("member")
    if not references:
        raise MismatchError(f"{owner} lists no members")
    loaded = [load_reference(workspace, ref, owner=owner, load=context.load) for ref in references]
    names = [ref.name for ref in references]
    check_compatible(names, [m.checkpoint for m in loaded])
    if _data_key(loaded[0].checkpoint) != _data_key(checkpoint):
        raise MismatchError(f"{owner}'s members no longer match its recorded class list or image size")
    config = checkpoint.config
    return Ensemble([m.module for m in loaded], weights=config.get("weights"),
                    combine=config.get("combine", "probs"), names=names).to(context.device)

