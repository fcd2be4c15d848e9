"""core.stages.info: run_info (with verification) and run_ls, called directly."""

from __future__ import annotations

import pytest

from defendr_cli.core.errors import InputError
from defendr_cli.core.stages.info import run_info, run_ls


def test_info_describes_and_verifies_the_only_cache(stage_ws):
    result = run_info(stage_ws, verify=True)
    assert result.path == stage_ws.path_for("data", "synth") and result.verify.ok
    assert result.to_dict()["verify"]["ok"] is True
    result.raise_if_corrupt()  # nothing to raise


def test_ls_lists_one_kind_and_refuses_an_unknown_one(stage_ws):
    result = run_ls(stage_ws, "models")
    assert result.kinds == ("model",) and {"baseline", "advfgsm"} <= {e.name for e in result.entries}
    with pytest.raises(InputError, match="unknown kind"):
        run_ls(stage_ws, "nope")
