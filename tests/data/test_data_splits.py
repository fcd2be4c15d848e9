"""Per-class split arithmetic."""

from __future__ import annotations

import pytest

from defendr_cli.core.data.splits import SplitSpec, default_split, parse_split
from defendr_cli.core.errors import InputError


def test_paper_split_for_201_classes():
    spec = parse_split("54,6,10", 70)
    assert spec == SplitSpec(54, 6, 10) and spec.per_class == 70
    assert spec.counts(201) == {"train": 10854, "val": 1206, "test": 2010}
    assert spec.bounds() == {"train": (0, 54), "val": (54, 60), "test": (60, 70)}


def test_default_split_scales_the_paper_proportions():
    assert default_split(70) == SplitSpec(54, 6, 10)
    assert default_split(200) == SplitSpec(154, 17, 29)
    assert default_split(3) == SplitSpec(1, 1, 1)
    assert parse_split(None, None) == SplitSpec(54, 6, 10)
    assert parse_split("50,0,20", None).per_class == 70


@pytest.mark.parametrize("text", ["54,6", "a,b,c", "0,5,5", "54,-1,10", "54,6,10,1"])
def test_bad_split_text_is_an_input_error(text):
    with pytest.raises(InputError):
        parse_split(text, None)


def test_split_must_match_per_class():
    with pytest.raises(InputError, match="adds up to 70"):
        parse_split("54,6,10", 80)
    with pytest.raises(InputError):
        default_split(2)
