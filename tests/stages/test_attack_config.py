"""The attack stage's config checked against the attack's spec: flags, other options, set names."""

from __future__ import annotations

import pytest

from defendr_cli.core.attacks.eps import parse_eps_list
from defendr_cli.core.errors import InputError
from defendr_cli.core.stages.attack_config import (
    AttackStageConfig,
    attack_options,
    parse_option_pairs,
    set_name,
    validate_config,
)


def _valid(**kw) -> AttackStageConfig:
    return validate_config(AttackStageConfig(**{"attack": "pgd", "eps": parse_eps_list("8/255"), **kw}))


def _name(**kw) -> str:
    config = _valid(**kw)
    return set_name(config, config.eps[0], "baseline", "test")


def test_defaults_come_from_the_attack_signature():
    pgd = _valid()
    assert (pgd.steps, pgd.random_start, pgd.restarts, pgd.step_size) == (10, True, 1, None)
    assert attack_options(pgd) == {"steps": 10, "random_start": True, "restarts": 1}
    bim = _valid(attack="I-FGSM")
    assert bim.attack == "bim" and (bim.steps, bim.random_start, bim.restarts) == (10, None, None)
    fgsm = _valid(attack="fgsm")
    assert (fgsm.steps, fgsm.random_start, fgsm.restarts) == (None, None, None) and attack_options(fgsm) == {}


def test_flags_an_attack_does_not_take_are_rejected_with_the_stage_messages():
    with pytest.raises(InputError, match="fgsm is a single step: it does not take --steps, --restarts"):
        _valid(attack="fgsm", steps=3, restarts=1)
    with pytest.raises(InputError, match="bim starts at the clean image: --random-start and --restarts are for [a-z, -]*pgd"):
        _valid(attack="bim", restarts=2)
    with pytest.raises(InputError, match="mifgsm starts at the clean image"):
        _valid(attack="mifgsm", random_start=True)
    neutral = _valid(attack="bim", random_start=False, restarts=1)  # asks for nothing bim does differently
    assert attack_options(neutral) == {"steps": 10}
    for bad, message in (({"steps": 0}, "--steps must be at least 1"), ({"restarts": 0}, "--restarts must be"),
                         ({"step_size": -1.0}, "--step-size must be > 0"), ({"loss": "hinge"}, "unknown loss 'hinge'")):
        with pytest.raises(InputError, match=message):
            _valid(**bad)


def test_other_options_are_typed_checked_and_named():
    config = _valid(options=parse_option_pairs(["eot=3"]))
    assert config.options == {"eot": 3} and attack_options(config)["eot"] == 3
    assert _name(options={"eot": "3"}) == "pgd-eps8_255-s10-eot3-baseline-test"
    assert _valid(options={"eot": "1"}).options == {}  # the default: same set as not giving it
    assert _name(attack="mifgsm", steps=5, options={"decay": "0.5"}) == "mifgsm-eps8_255-s5-decay0.5-baseline-test"
    with pytest.raises(InputError, match="pgd does not take the option 'rho'"):
        _valid(options={"rho": "0.75"})
    with pytest.raises(InputError, match="give steps with --steps"):
        _valid(options={"steps": "3"})
    with pytest.raises(InputError, match="fgsm does not take the option 'eot'"):
        _valid(attack="fgsm", options={"eot": 2})
    with pytest.raises(InputError, match="cannot read option 'eot'"):
        parse_option_pairs(["eot"])


def test_set_names_are_unchanged():
    assert _name() == "pgd-eps8_255-s10-baseline-test"
    assert _name(attack="fgsm") == "fgsm-eps8_255-baseline-test"
    assert _name(random_start=False, restarts=2, targeted="ll", label_mode="predicted", loss="margin") == \
        "pgd-eps8_255-s10-norand-r2-tll-pred-margin-baseline-test"
    assert _name(attack="bim", steps=3, eps_space="normalized", targeted="random") == \
        "bim-eps8_255n-s3-trand-baseline-test"


@pytest.mark.parametrize("attack,pair,allowed", [
    ("pgd", "eot=0", "eot of pgd must be an integer >= 1, got 0"),
    ("square", "n_queries=-1", "n_queries of square must be an integer >= 1, got -1"),
    ("apgd-t", "n_target_classes=0", "n_target_classes of apgd-t must be an integer >= 1"),
    ("apgd", "rho=nan", "rho of apgd must be a finite number > 0 and <= 1, got nan"),
    ("apgd", "rho=1.5", "rho of apgd must be a finite number > 0 and <= 1"),
    ("square", "p_init=0", "p_init of square must be a finite number > 0 and <= 1"),
    ("mifgsm", "decay=-1", "decay of mifgsm must be a finite number >= 0"),
    ("mifgsm", "decay=inf", "decay of mifgsm must be a finite number >= 0"),
])
def test_other_options_past_their_range_name_the_option_and_the_range(attack, pair, allowed):
    with pytest.raises(InputError, match=allowed):
        _valid(attack=attack, steps=None, random_start=None, restarts=None, options=parse_option_pairs([pair]))
    assert _valid(attack="apgd", options=parse_option_pairs(["rho=0.5", "eot=2"])).options == {"eot": 2, "rho": 0.5}
