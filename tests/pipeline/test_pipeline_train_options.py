"""A profile's `methods.<m>` dict builds the recipe's own options (core/pipeline/stages.py)."""

from __future__ import annotations

import pytest

from defendr_cli.core.errors import InputError
from defendr_cli.core.pipeline import stages
from defendr_cli.core.pipeline.profile import available_profiles, load_profile
from defendr_cli.core.progress import NullReporter
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.training.recipes.registry import get_recipe
from defendr_cli.core.workspace import Workspace


def env_for(workspace, settings) -> stages.StageEnv:
    return stages.StageEnv(workspace, Runtime(), settings, NullReporter())


@pytest.mark.parametrize("profile", available_profiles())
def test_every_shipped_method_builds_its_recipe_options(workspace, profile):
    settings = load_profile(profile)
    env = env_for(workspace, settings)
    for name, spec in stages.method_specs(settings).items():
        options = stages.train_options(env, name, spec)
        assert options.name == name
        assert type(options.method_options) is get_recipe(spec["method"]).options_class
        for key, value in spec.items():
            if key not in ("method", "adv", "precision"):  # precision: a stage setting (training_runtime)
                assert options.to_dict()[key] == value, (name, key)
        if "adv" in spec:
            assert options.method_options.adv == [f"{p}-baseline-train" for p in spec["adv"]]


def test_dunet_inputs_include_its_target(workspace):
    settings = load_profile("quick")
    settings["methods"]["dunet"]["target"] = "advpgd"
    env = env_for(workspace, settings)
    inputs = stages.training_inputs(env, "dunet", stages.method_specs(settings)["dunet"])
    assert workspace.path_for("model", "advpgd", create_dir=False) in inputs


def test_unknown_method_option_names_the_method_and_its_options(workspace):
    settings = load_profile("quick")  # --set refuses unknown keys; an edited profile file may hold one
    settings["methods"]["clp"]["guide"] = "logits"
    env = env_for(workspace, settings)
    with pytest.raises(InputError, match=r"profile methods.clp: method 'clp' does not take guide \(its own "
                                         r"options: arch, .*pair_weight"):
        stages.train_options(env, "clp", stages.method_specs(settings)["clp"])


def test_training_precision_comes_from_the_method_then_the_train_block(tmp_path):
    settings = load_profile("quick")
    env = env_for(Workspace(tmp_path), settings)
    settings["train"]["precision"] = "bf16"
    assert stages.training_runtime(env, {"method": "adv"}).precision == "bf16"
    assert stages.training_runtime(env, {"method": "dunet", "precision": "fp32"}).precision == "fp32"
    del settings["train"]["precision"]
    assert stages.training_runtime(env, {"method": "adv"}) is env.runtime
    # 'precision' is a stage setting, not a recipe option
    stages.train_options(env, "dunet", {"method": "dunet", "precision": "bf16", "width_mult": 0.25})


def test_the_pipeline_takes_set_names_from_the_attack_stage(workspace):
    settings = load_profile("quick")
    assert stages.adv_set_name(settings, "pgd-eps8_255-s10", "train") == "pgd-eps8_255-s10-baseline-train"
    assert stages.adv_set_name(settings, "fgsm-eps4_255", "train") is None  # an extra attack: test split only
    with pytest.raises(InputError, match="'pgd-eps8_255', which none of its attacks makes"):
        stages.adv_set_name(settings, "pgd-eps8_255", "test")
    settings["attacks"][1].pop("steps")  # the stage fills in pgd's default steps, and names the set by them
    assert [p.name for p in stages.planned_sets(settings, settings["attacks"][1], ["test"])] \
        == ["pgd-eps8_255-s10-baseline-test"]
