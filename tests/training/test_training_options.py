"""TrainOptions and the recipes' own options: defaults per image size, validation naming the flag,
strict building from flat values, plain-value round trip."""

from __future__ import annotations

import io
from dataclasses import fields

import pytest
import torch

from defendr_cli.core.errors import InputError
from defendr_cli.core.training.options import SHARED_FIELDS, MethodOptions, TrainOptions, cli_fields, flag_of
from defendr_cli.core.training.recipes.registry import (
    RECIPES,
    get_recipe,
    options_from_dict,
    recipe_names,
    train_options,
)


def test_defaults_follow_the_paper_for_large_images_and_the_quick_profile_for_small():
    paper = train_options("alp", {}).resolved(299)
    assert (paper.method_options.arch, paper.epochs, paper.batch_size, paper.lr, paper.optimizer) \
        == ("resnet101", 15, 128, 1e-3, "adam")
    assert paper.name == "alp"
    quick = train_options("baseline", {}).resolved(32)
    assert (quick.method_options.arch, quick.epochs, quick.batch_size) == ("tinyresnet", 8, 64)
    assert train_options("baseline", {"pretrained": "imagenet"}).resolved(32).method_options.arch == "resnet101"
    given = train_options("baseline", dict(arch="resnet18", epochs=2, batch_size=8, name="r")).resolved(32)
    assert (given.method_options.arch, given.epochs, given.batch_size, given.name) == ("resnet18", 2, 8, "r")
    big = train_options("baseline", dict(arch="resnet18")).resolved(32)  # not a tiny arch: the paper's sizes
    assert (big.epochs, big.batch_size) == (15, 128)


def test_dunet_takes_no_classifier_option_and_keeps_its_defaults():
    assert (train_options("dunet", {}).resolved(32).epochs, train_options("dunet", {}).resolved(299).epochs) == (8, 15)
    for name, value in (("arch", "resnet50"), ("freeze_backbone", True), ("pretrained", "imagenet"),
                        ("defense", "random-resize-pad"), ("defense_variant", "paper"), ("passes", 2)):
        with pytest.raises(InputError, match=f"method 'dunet' does not take {name}"):
            train_options("dunet", {name: value}, where="profile methods.dunet")
    assert "arch" not in train_options("dunet", {}).to_dict() and "arch" not in SHARED_FIELDS


@pytest.mark.parametrize("method, field, value, flag", [
    ("baseline", "optimizer", "rmsprop", "--optimizer"), ("baseline", "schedule", "linear", "--schedule"),
    ("baseline", "epochs", 0, "--epochs"), ("baseline", "lr", 0.0, "--lr"), ("baseline", "name", "../x", "--name"),
    ("baseline", "defense", "jpeg", "--defense"),
    ("dunet", "guide", "x", "--guide"), ("dunet", "width_mult", 0.0, "--width-mult"),
    ("alp", "eps_space", "logit", "--eps-space"), ("adv", "adv_ratio", 1.5, "--adv-ratio"),
    ("adv", "attack_steps", 0, "--attack-steps"), ("alp", "pair_weight", -1.0, "--pair-weight"),
    ("clp", "pair_weight", -1.0, "--pair-weight"), ("lsq", "squeeze_weight", -0.1, "--squeeze-weight"),
])
def test_bad_values_name_their_flag(method, field, value, flag):
    with pytest.raises(InputError, match=flag):
        train_options(method, {field: value})


@pytest.mark.parametrize("method", recipe_names())
def test_each_recipe_declares_documented_options_of_its_own(method):
    spec = get_recipe(method)
    assert spec.name == method and issubclass(spec.options_class, MethodOptions)
    assert spec.kind and spec.help
    for f in cli_fields(spec.options_class):
        assert f.metadata["help"] and flag_of(f).startswith("--"), f.name
    own = {f.name for f in fields(spec.options_class)}
    assert not own & set(SHARED_FIELDS)
    assert isinstance(spec.options_class().validate(), spec.options_class)  # defaults are valid


@pytest.mark.parametrize("method", recipe_names())
def test_flags_of_another_method_are_refused_naming_the_allowed_ones(method):
    own = {f.name for f in fields(get_recipe(method).options_class)}
    foreign = sorted({f.name for spec in RECIPES.values() for f in fields(spec.options_class)} - own)
    for name in foreign:
        with pytest.raises(InputError, match=f"method '{method}' does not take {name}"):
            train_options(method, {name: None}, where="profile")
    with pytest.raises(InputError, match="unknown training method 'magic'"):
        train_options("magic", {})


@pytest.mark.parametrize("method", recipe_names())
def test_round_trip_through_a_weights_only_file(method):
    classifier = "passes" in {f.name for f in fields(get_recipe(method).options_class)}
    options = train_options(method, {"epochs": 3, "seed": 5, **({"passes": 3} if classifier else {})})
    buffer = io.BytesIO()
    torch.save({"options": options.to_dict()}, buffer)
    buffer.seek(0)
    restored = options_from_dict(torch.load(buffer, weights_only=True)["options"])
    assert restored == options and type(restored.method_options) is get_recipe(method).options_class


def test_old_flat_dicts_with_every_method_field_still_load():
    old = {"method": "clp", "pair_weight": 0.3, "squeeze_weight": 0.05, "guide": "logits", "adv": [], "epochs": 2}
    restored = options_from_dict(old)
    assert restored.method_options.pair_weight == 0.3 and restored.epochs == 2
