"""Allowed ranges of numeric settings: one `Range` type for command-line options
(cli/option_ranges.py) and for an attack's own options (`AttackSpec.option_ranges`)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    """low <= value <= high (`low_open`: low < value); None: unbounded on that side. NaN and
    infinities are never inside. `cap`: an upper bound against typos (an extra three zeros),
    reported on its own so the usual message stays '>= 1'."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    cap: float | None = None

    def describe(self) -> str:
        """'>= 1', '> 0', 'in [0, 1]', 'in (0, 10]'."""
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {format_number(self.low)}"
        return f"in {'(' if self.low_open else '['}{format_number(self.low)}, {format_number(self.high)}]"

    def describe_bounds(self) -> str:
        """' > 0 and <= 1', ' >= 0', '' (unbounded): the bounds as words after 'a finite number'."""
        text = "" if self.low is None else f" {'>' if self.low_open else '>='} {self.low:g}"
        return text + ("" if self.high is None else f"{' and' if text else ''} <= {self.high:g}")

    def contains(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return (self.high is None or value <= self.high) and not self.over_cap(value)

    def over_cap(self, value: float) -> bool:
        return self.cap is not None and value > self.cap

    def past_limit(self) -> float:
        """A value just outside the range (what tests feed)."""
        return self.low - 1 if self.low is not None else self.high + 1

    def past_high(self) -> float | None:
        """A value just above the range (or its cap), None when it has no upper bound."""
        top = self.high if self.high is not None else self.cap
        return None if top is None else top + 1


def format_number(value: float) -> str:
    """1.0 -> '1', 0.5 -> '0.5'."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
