"""Set names are made in one place (core/attacks/set_names.py): the stage plans the names it writes,
and a report labels a set from its stored attributes, never by parsing its name."""

from __future__ import annotations

from dataclasses import replace

import pytest

from defendr_cli.core.attacks.eps import parse_eps_list
from defendr_cli.core.attacks.registry import get_attack
from defendr_cli.core.attacks.set_names import attack_set_label, label_of_set, sibling_set_name
from defendr_cli.core.evaluation.transfer.inputs import describe_adv_set
from defendr_cli.core.io.adversarial import read_adv_info
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.stages.attack import AttackStageConfig, planned_sets, run_attack
from tests.attacks.attack_helpers import make_cache, make_checkpoint


@pytest.fixture
def ws(workspace):
    make_cache(workspace)
    make_checkpoint(workspace)
    return workspace


@pytest.mark.parametrize("settings, label", [
    (dict(attack="apgd-t", steps=2, options={"n_target_classes": 2}), "apgd-t-eps8_255-s2-ntargetclasses2"),
    (dict(attack="pgd", steps=2, restarts=2, targeted="random", loss="dlr"), "pgd-eps8_255-s2-r2-trand-dlr"),
    (dict(attack="fgsm", eps_space="normalized", label_mode="predicted"), "fgsm-eps8_255n-pred"),
])
def test_planned_names_are_written_and_labels_come_from_stored_attributes(ws, settings, label):
    config = AttackStageConfig(eps=parse_eps_list("8/255"), batch_size=16, splits=["test", "val"], preview=False,
                               **settings)
    planned = planned_sets(config, "baseline")
    assert [(p.label, p.split) for p in planned] == [(label, "test"), (label, "val")]
    results = run_attack(ws, config, Runtime())
    assert [r.name for r in results] == [p.name for p in planned] == [f"{label}-baseline-test", f"{label}-baseline-val"]
    info = read_adv_info(results[0].path)
    assert label_of_set(info) == label and describe_adv_set(info).label == label  # 'apgd-t' too
    assert sibling_set_name(info, "val") == results[1].name


def test_a_set_of_an_unregistered_attack_has_no_label(ws):
    config = AttackStageConfig(attack="fgsm", eps=parse_eps_list("8/255"), batch_size=16, preview=False)
    info = replace(read_adv_info(run_attack(ws, config, Runtime())[0].path), attack="not-an-attack")
    assert label_of_set(info) is None and describe_adv_set(info).label == info.name


def test_a_label_from_the_resolved_spec_is_the_label_from_its_name():
    # the stage passes its validated config's AttackSpec (config.attack_spec), reports pass the stored name
    options = {"steps": 10, "restarts": 2}
    assert attack_set_label(get_attack("pgd"), "8/255", options=options, targeted="least-likely") \
        == attack_set_label("pgd", "8/255", options=options, targeted="least-likely") == "pgd-eps8_255-s10-r2-tll"
