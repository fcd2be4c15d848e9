"""`core.stages.train.run_train` with a toy recipe registered by this test alone: a classifier trained
with label smoothing, declared as one options dataclass, one Recipe and one RecipeSpec. It trains
through the stage, reaches the CLI (`defendr train smooth-test`) and profiles' methods.<m> rules."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch.nn.functional as F
import typer
from typer.testing import CliRunner

from defendr_cli.cli.train import build_train_app
from defendr_cli.core.errors import InputError
from defendr_cli.core.io.checkpoint import read_checkpoint
from defendr_cli.core.models.loading import load_model
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.stages.train import run_train
from defendr_cli.core.training.data import TrainBatch
from defendr_cli.core.training.options import option
from defendr_cli.core.training.recipes.base import RecipeSpec, StepResult
from defendr_cli.core.training.recipes.baseline import ClassifierOptions, ClassifierRecipe
from defendr_cli.core.training.recipes.registry import recipe_names, register_recipe, train_options, unregister_recipe
from tests.training.train_helpers import write_tiny_cache


@dataclass
class SmoothingOptions(ClassifierOptions):
    smoothing: float = option(0.1, help="Label smoothing of the cross-entropy, in [0, 1).")

    def validate(self) -> "SmoothingOptions":
        super().validate()
        if not 0.0 <= self.smoothing < 1.0:
            raise InputError(f"--smoothing must be in [0, 1), got {self.smoothing}")
        return self


class SmoothingRecipe(ClassifierRecipe):
    method_options: SmoothingOptions

    def batch_loss(self, batch: TrainBatch, forward) -> StepResult:
        logits = forward(batch.images)
        loss = F.cross_entropy(logits.float(), batch.labels, label_smoothing=self.method_options.smoothing)
        return StepResult(loss, logits, batch.labels)

    def describe_method(self) -> str:
        return f"smooth-test (ε={self.method_options.smoothing:g})"


SPEC = RecipeSpec("smooth-test", SmoothingOptions, SmoothingRecipe, kind="classifier",
                  help="Cross-entropy with label smoothing (test recipe).")


@pytest.fixture
def smoothing_recipe():
    register_recipe(SPEC)
    yield SPEC
    unregister_recipe(SPEC.name)
    assert SPEC.name not in recipe_names()


def test_toy_recipe_trains_through_the_stage(workspace, smoothing_recipe):
    write_tiny_cache(workspace.path_for("data", "tiny"))
    options = train_options("smooth-test", {"smoothing": 0.2, "arch": "tinycnn", "epochs": 2, "batch_size": 12,
                                            "lr": 0.02})
    result = run_train(workspace, options, Runtime())
    losses = [record.train_loss for record in result.history]
    assert losses[-1] < losses[0], losses
    checkpoint = read_checkpoint(result.path)
    assert checkpoint.method == "smooth-test" and checkpoint.hparams["smoothing"] == 0.2
    assert checkpoint.summary.startswith("smooth-test (ε=0.2)")
    assert load_model(workspace, "smooth-test").kind == "classifier"


def test_toy_recipe_options_are_validated_and_strict(smoothing_recipe):
    with pytest.raises(InputError, match="--smoothing"):
        train_options("smooth-test", {"smoothing": 1.5})
    with pytest.raises(InputError, match="profile methods.s: method 'smooth-test' does not take pair_weight"):
        train_options("smooth-test", {"pair_weight": 0.5}, where="profile methods.s")


def test_toy_recipe_gets_its_own_cli_subcommand(smoothing_recipe):
    app = typer.Typer()
    app.callback()(lambda: None)
    app.add_typer(build_train_app(), name="train")
    listing = CliRunner().invoke(app, ["train", "--help"])
    assert listing.exit_code == 0 and "smooth-test" in listing.output
    own = CliRunner().invoke(app, ["train", "smooth-test", "--help"])
    assert own.exit_code == 0 and "--smoothing" in own.output and "--pair-weight" not in own.output
