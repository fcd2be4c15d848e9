"""Allowed ranges of every numeric command-line option, checked when the option is parsed.

`install_range_checks(command)` walks a click command tree (the root `defendr` group installs it
on itself) and gives every int/float option a callback that raises a one-line InputError naming
the option and its allowed range (exit 1 through cli/_errors.py), instead of running with a value
that crashes deep in torch or silently does nothing. NaN and infinities are refused for floats.

Ranges are keyed by flag (`RANGES`), with per-command exceptions in `COMMAND_RANGES` keyed by
(command path, flag), e.g. (("prepare",), "--workers"). A numeric option with no range is a
programming error: `range_of` raises KeyError at install time, so a new option cannot ship
unchecked (tests/cli/test_cli_option_ranges.py walks every command).
"""

from __future__ import annotations

from typing import Any

from defendr_cli.core.errors import InputError
from defendr_cli.core.ranges import Range, format_number

SEED_MAX = 2**32 - 1  # numpy's seed range


# Upper bounds are far past any sensible run (AutoAttack uses 100 steps and 5000 queries, the paper
# 15 epochs): a value beyond them is a typo (an extra zero or three) that would otherwise run for days.
RANGES: dict[str, Range] = {
    "--seed": Range(0, SEED_MAX),
    "--batch-size": Range(1, cap=65_536),
    "--classes": Range(2, cap=100_000),
    "--per-class": Range(1, cap=10_000_000),
    "--image-size": Range(8, 4096),
    "--workers": Range(0, 1024),
    "--steps": Range(1, cap=100_000),
    "--restarts": Range(1, cap=1_000),
    "--eot": Range(1, cap=10_000),
    "--subset": Range(1, cap=100_000_000),
    "--chunk-size": Range(1, cap=1_000_000),
    "--square-queries": Range(1, cap=1_000_000),
    "--draws": Range(1, cap=10_000),
    "--count": Range(1, cap=100_000),
    "--epochs": Range(1, cap=100_000),
    "--passes": Range(1, cap=1_000),
    "--attack-steps": Range(1, cap=100_000),
    "--lr": Range(0, 10, low_open=True),
    "--weight-decay": Range(0, 1),
    "--adv-ratio": Range(0, 1, low_open=True),
    "--pair-weight": Range(0, cap=1_000),
    "--squeeze-weight": Range(0, cap=1_000),
    "--width-mult": Range(0, 16, low_open=True),
}

COMMAND_RANGES: dict[tuple[tuple[str, ...], str], Range] = {
    (("prepare",), "--workers"): Range(1, 1024),  # decoding processes; 1 decodes in-process
}


def range_of(path: tuple[str, ...], flag: str) -> Range:
    """The allowed range of `flag` in the command at `path` (KeyError when none is declared)."""
    return COMMAND_RANGES.get((path, flag)) or RANGES[flag]


def numeric_kind(param: Any) -> type | None:
    """int or float for a numeric option (Optional included), else None."""
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if annotation in (int, float):
        return annotation
    args = getattr(annotation, "__args__", ())
    kinds = [a for a in args if a in (int, float)]
    return kinds[0] if len(kinds) == 1 and len(args) == 2 and type(None) in args else None


def numeric_options(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(command path, option) for every int/float option below `command`."""
    children = getattr(command, "commands", None)
    if children is not None:
        return [item for name, child in children.items() for item in numeric_options(child, (*path, name))]
    return [(path, p) for p in command.params
            if getattr(p, "opts", None) and p.opts[0].startswith("--") and numeric_kind(p) is not None]


def _checker(flag: str, allowed: Range, previous: Any) -> Any:
    def check(ctx: Any, param: Any, value: Any) -> Any:
        if value is not None and not allowed.contains(value):
            if allowed.over_cap(value):
                raise InputError(f"{flag} must be at most {format_number(allowed.cap)}, got {value} (a bound against typos)")
            raise InputError(f"{flag} must be {allowed.describe()}, got {value}")
        return previous(ctx, param, value) if previous is not None else value
    check.range_checked = True  # type: ignore[attr-defined]
    return check


def install_range_checks(command: Any) -> None:
    """Give every numeric option below `command` its range check (idempotent)."""
    for path, param in numeric_options(command):
        if getattr(param.callback, "range_checked", False):
            continue
        flag = param.opts[0]
        param.callback = _checker(flag, range_of(path, flag), param.callback)
