"""One epoch of a training run as a typed record: what the loop measures, the checkpoint's `history`
and `best`, the resume state and the reports read.

Files keep plain dicts (weights_only loadable): `EpochRecord.to_dict()` writes the keys in the
order epoch, lr, train_loss, train_acc, val_loss, val_acc, seconds, leaving out the metrics a run
does not measure (no train_acc when the recipe returns no logits; no val_loss/val_acc without a
validation split); `EpochRecord.from_dict` reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class EpochRecord:
    """epoch: 1-based; lr: the learning rate the epoch trained with; train_loss: mean batch loss;
    train_acc, val_acc: fractions in [0, 1]; val_loss: mean cross-entropy on the validation
    batches; seconds: wall-clock seconds of the epoch (train + validation)."""

    epoch: int
    lr: float
    train_loss: float
    train_acc: float | None = None
    val_loss: float | None = None
    val_acc: float | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The stored form: plain values, unmeasured metrics left out."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "EpochRecord":
        """The record of a stored dict (`to_dict`'s form; keys this build does not know are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})

    def beats(self, best: "EpochRecord | None") -> bool:
        """Whether this epoch replaces `best` as the checkpoint: the first epoch, a higher validation
        accuracy, or any epoch of a run without validation (the last one then counts as best)."""
        if best is None or self.val_acc is None:
            return True
        return self.val_acc > (best.val_acc if best.val_acc is not None else -1.0)
