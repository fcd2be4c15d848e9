"""Every registered recipe (parametrized over the registry, dunet included): its options build, one
tiny epoch runs through the train stage, the checkpoint is written and loadable, and the options
round-trip through the checkpoint's hparams."""

from __future__ import annotations

import pytest
import torch

from defendr_cli.core.io.checkpoint import read_checkpoint
from defendr_cli.core.models.loading import load_model
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.stages.train import run_train
from defendr_cli.core.training.recipes.adversarial_source import AdversarialSourceOptions
from defendr_cli.core.training.recipes.baseline import ClassifierOptions
from defendr_cli.core.training.recipes.registry import get_recipe, options_from_dict, recipe_names, train_options
from defendr_cli.core.workspace import Workspace
from tests.training.train_helpers import write_tiny_cache

TINY = {"arch": "tinycnn", "epochs": 1, "batch_size": 12, "lr": 0.02, "data": "tiny"}


@pytest.fixture(scope="module")
def target_workspace(tmp_path_factory) -> Workspace:
    """A tiny cache (3 classes, 16 px) and a 'baseline' classifier, the default target of recipes
    that read another model (dunet)."""
    workspace = Workspace(tmp_path_factory.mktemp("recipes"))
    write_tiny_cache(workspace.path_for("data", "tiny"))
    run_train(workspace, train_options("baseline", TINY), Runtime())
    return workspace


def tiny_values(method: str) -> dict:
    """Shared tiny settings (the tiny arch for classifiers); recipes with an adversarial source
    attack each batch with FGSM."""
    values = {**TINY, "name": f"r-{method}"}
    if not issubclass(get_recipe(method).options_class, ClassifierOptions):
        values.pop("arch")  # a classifier's option: dunet refuses it
    if issubclass(get_recipe(method).options_class, AdversarialSourceOptions):
        values |= {"online": "fgsm", "eps": "8/255"}
    return values


@pytest.mark.parametrize("method", recipe_names())
def test_every_recipe_trains_one_epoch_and_writes_a_loadable_checkpoint(target_workspace, method):
    spec = get_recipe(method)
    options = train_options(method, tiny_values(method))
    result = run_train(target_workspace, options, Runtime())
    assert result.path == target_workspace.path_for("model", f"r-{method}") and result.path.is_file()
    checkpoint = read_checkpoint(result.path)
    assert checkpoint.kind == spec.kind and checkpoint.method == method and len(checkpoint.history) == 1
    assert options_from_dict(checkpoint.hparams) == options.resolved(16)
    loaded = load_model(target_workspace, f"r-{method}")
    with torch.no_grad():
        assert loaded.module(torch.rand(2, 3, 16, 16)).shape == (2, 3)
