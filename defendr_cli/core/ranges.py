"""Allowed ranges of numeric settings: one `Range` type for command-line options
(cli/option_ranges.py) and for an attack's own options (`AttackSpec.option_ranges`)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    """low <= value <= high (`low_open`: low < value); None: unbounded on that side. NaN and
    infinities are never inside."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False

    def describe(self) -> str:
        """'>= 1', '> 0', 'in [0, 1]', 'in (0, 10]'."""
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {_number(self.low)}"
        return f"in {'(' if self.low_open else '['}{_number(self.low)}, {_number(self.high)}]"

    def describe_bounds(self) -> str:
        """' > 0 and <= 1', ' >= 0', '' (unbounded): the bounds as words after 'a finite number'."""
        text = "" if self.low is None else f" {'>' if self.low_open else '>='} {self.low:g}"
        return text + ("" if self.high is None else f"{' and' if text else ''} <= {self.high:g}")

    def contains(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or value <= self.high

    def past_limit(self) -> float:
        """A value just outside the range (what tests feed)."""
        return self.low - 1 if self.low is not None else self.high + 1


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
