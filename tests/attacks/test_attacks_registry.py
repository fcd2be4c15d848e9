"""The attack registry: specs derived from signatures, names, aliases, typed options, naming rule."""

from __future__ import annotations

import pytest
import torch

from defendr_cli.core.attacks import ATTACKS, AttackSpec, attack_names, get_attack, register_attack
from defendr_cli.core.attacks.pgd import default_iterative_step_size, default_pgd_step_size
from defendr_cli.core.attacks.registry import ALIASES, REQUIRED_KEYWORDS
from defendr_cli.core.errors import InputError


@pytest.mark.parametrize("name", attack_names())
def test_every_spec_takes_what_the_stages_pass(name):
    spec = ATTACKS[name]
    assert spec.name == name and get_attack(name.upper()) is spec
    assert all(key in spec.parameters for key in (*REQUIRED_KEYWORDS, "eps"))
    assert not spec.stochastic or "generator" in spec.parameters
    assert all(ALIASES[alias] == name for alias in spec.aliases)
    assert spec.iterative == ("steps" in spec.options)
    if spec.default_step_size is not None:
        assert "step_size" in spec.options and spec.iterative


def test_built_in_specs():
    assert get_attack("i-fgsm").name == "bim" and get_attack("MI-FGSM").name == "mifgsm"
    assert get_attack("fgsm").options == () and get_attack("fgsm").multi_eps is not None
    pgd = get_attack("pgd")
    assert pgd.options == ("steps", "step_size", "random_start", "restarts", "eot")
    assert pgd.stochastic and pgd.accepts("restarts") and pgd.default_step_size is default_pgd_step_size
    assert get_attack("bim").default_step_size is default_iterative_step_size and not get_attack("bim").stochastic
    assert get_attack("mifgsm").defaults["decay"] == 1.0
    with pytest.raises(InputError, match="unknown attack 'deepfool'"):
        get_attack("deepfool")


def test_standard_name_suffix():
    pgd, bim, mifgsm = get_attack("pgd"), get_attack("bim"), get_attack("mifgsm")
    assert pgd.suffix({"steps": 10, "random_start": True, "restarts": 1}) == "-s10"
    assert pgd.suffix({"steps": 10, "random_start": False, "restarts": 3}) == "-s10-norand-r3"
    assert pgd.suffix({"steps": 5, "random_start": True, "restarts": 1, "eot": 4}) == "-s5-eot4"
    assert pgd.suffix({"steps": 5, "random_start": True, "restarts": 1, "eot": 1}) == "-s5"  # default: no part
    assert bim.suffix({"steps": 3}) == "-s3" and get_attack("fgsm").suffix({}) == ""
    assert mifgsm.suffix({"steps": 10, "decay": 0.5}) == "-s10-decay0.5"


def test_parse_option_types_values_like_their_defaults():
    pgd, mifgsm = get_attack("pgd"), get_attack("mifgsm")
    assert pgd.parse_option("eot", "4") == 4 and isinstance(pgd.parse_option("eot", "4"), int)
    assert mifgsm.parse_option("decay", "0.5") == 0.5
    assert pgd.parse_option("random_start", "off") is False
    with pytest.raises(InputError, match="option eot of pgd takes a value of type int, got 'x'"):
        pgd.parse_option("eot", "x")
    with pytest.raises(InputError, match="pgd does not take the option 'rho'"):
        pgd.parse_option("rho", "0.75")


def test_register_refuses_taken_names_and_incomplete_functions():
    with pytest.raises(ValueError, match="already registered"):
        register_attack(AttackSpec("pgd", get_attack("pgd").function))
    with pytest.raises(ValueError, match="already registered"):
        register_attack(AttackSpec("newname", get_attack("bim").function, aliases=("i-fgsm",)))

    def bare(model, images, labels, eps, *, targeted=False, targets=None, loss="ce", runtime=None):
        return None

    with pytest.raises(ValueError, match="must take generator"):
        register_attack(AttackSpec("bare", bare, stochastic=True))

    def no_runtime(model, images: torch.Tensor, labels, eps, *, targeted=False, targets=None, loss="ce"):
        return None

    with pytest.raises(ValueError, match="must take runtime"):
        register_attack(AttackSpec("no-runtime", no_runtime))
    assert "bare" not in ATTACKS and "no-runtime" not in ATTACKS and "newname" not in ATTACKS
