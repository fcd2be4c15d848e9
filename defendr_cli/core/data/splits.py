"""Per-class split arithmetic: how many images of each class go to train / val / test.

The paper uses 70 images per class split 54 / 6 / 10 (10854 / 1206 / 2010 for 201 classes).
"""

from __future__ import annotations

from dataclasses import dataclass

from defendr_cli.core.errors import InputError

PAPER_SPLIT = (54, 6, 10)


@dataclass(frozen=True)
class SplitSpec:
    """Images per class in each split; `per_class` is their sum."""

    train: int
    val: int
    test: int

    @property
    def per_class(self) -> int:
        return self.train + self.val + self.test

    def counts(self, num_classes: int) -> dict[str, int]:
        """Rows per split for `num_classes` classes."""
        return {"train": self.train * num_classes, "val": self.val * num_classes, "test": self.test * num_classes}

    def bounds(self) -> dict[str, tuple[int, int]]:
        """[start, stop) of each split within one class's `per_class` images."""
        return {"train": (0, self.train), "val": (self.train, self.train + self.val),
                "test": (self.train + self.val, self.per_class)}

    def __str__(self) -> str:
        return f"{self.train},{self.val},{self.test}"


def default_split(per_class: int) -> SplitSpec:
    """The paper's 54/6/10 proportions scaled to `per_class` (val and test at least 1 each)."""
    if per_class < 3:
        raise InputError(f"--per-class must be at least 3 (one image per split), not {per_class}")
    val = max(1, round(per_class * PAPER_SPLIT[1] / sum(PAPER_SPLIT)))
    test = max(1, round(per_class * PAPER_SPLIT[2] / sum(PAPER_SPLIT)))
    return SplitSpec(per_class - val - test, val, test)


def parse_split(text: str | None, per_class: int | None) -> SplitSpec:
    """'54,6,10' -> SplitSpec(54, 6, 10); None -> default_split(per_class) (70 when both are None).

    A given split must sum to `per_class` when that is given too.
    """
    if text is None:
        return default_split(per_class if per_class is not None else sum(PAPER_SPLIT))
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise InputError(f"--split must be three whole numbers like 54,6,10, not '{text}'") from None
    if len(values) != 3 or any(v < 0 for v in values) or values[0] < 1:
        raise InputError(f"--split must be three counts train,val,test (train >= 1), not '{text}'")
    spec = SplitSpec(*values)
    if per_class is not None and spec.per_class != per_class:
        raise InputError(f"--split {text} adds up to {spec.per_class} images per class but --per-class is {per_class}")
    return spec
