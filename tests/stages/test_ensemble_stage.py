"""core.stages.ensemble.run_ensemble: a manifest referencing its members, called directly."""

from __future__ import annotations

import pytest

from defendr_cli.core.errors import ArtefactExistsError, InputError
from defendr_cli.core.stages.ensemble import EnsembleConfig, run_ensemble
from tests.evaluation import eval_builders as B


def test_manifest_lists_members_with_fingerprints_and_weights(stage_ws):
    result = run_ensemble(stage_ws, EnsembleConfig(name="pair", members=["baseline", "advfgsm"], weights=[3, 1]))
    assert result.path == stage_ws.path_for("model", "pair") and result.path.exists()
    assert [m.name for m in result.members] == ["baseline", "advfgsm"]
    assert [m.weight for m in result.members] == pytest.approx([0.75, 0.25])
    assert result.members[0].fingerprint == B.model_fingerprint(stage_ws.path_for("model", "baseline"))
    assert result.to_dict()["members"][1]["name"] == "advfgsm" and result.combine == "probs"
    with pytest.raises(ArtefactExistsError):
        run_ensemble(stage_ws, EnsembleConfig(name="pair", members=["baseline", "advfgsm"]))


def test_one_member_is_an_input_error(stage_ws):
    with pytest.raises(InputError, match="at least two members"):
        run_ensemble(stage_ws, EnsembleConfig(name="solo", members=["baseline"]))
