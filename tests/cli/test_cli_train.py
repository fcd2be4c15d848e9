"""`defendr train METHOD` through the Typer app, one invocation per method, on a tiny cache."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from defendr_cli.cli.app import app
from defendr_cli.core.io.checkpoint import read_checkpoint
from defendr_cli.core.training.options import cli_fields, flag_of
from defendr_cli.core.training.recipes.registry import get_recipe, recipe_names
from tests.training.train_helpers import write_noise_adv_set, write_tiny_cache

QUICK = ["--arch", "tinycnn", "--epochs", "2", "--batch-size", "12", "--lr", "0.02"]


@pytest.fixture
def ws(workspace):
    cache = write_tiny_cache(workspace.path_for("data", "tiny"))
    write_noise_adv_set(workspace, cache, "noise-eps0.05-none-train")
    return workspace


def invoke(ws, *args):
    return CliRunner().invoke(app, ["--workdir", str(ws.root), "train", *args])


@pytest.mark.parametrize("args", [
    ["baseline"],
    ["adv", "--adv", "noise-eps0.05"],
    ["adv", "--online", "fgsm", "--eps", "8/255", "--adv-ratio", "0.5", "--name", "adv-online"],
    ["alp", "--adv", "noise-eps0.05", "--pair-weight", "0.5"],
    ["alp", "--online", "pgd", "--eps", "4/255", "--attack-steps", "2", "--name", "alp-online"],
    ["clp", "--pair-weight", "0.5"],
    ["lsq", "--squeeze-weight", "0.05"],
])
def test_train_each_method_writes_its_checkpoint(ws, args):
    result = invoke(ws, *args, *QUICK)
    assert result.exit_code == 0, result.output
    name = args[args.index("--name") + 1] if "--name" in args else args[0]
    assert f"wrote {ws.path_for('model', name)}" in result.output.replace("\n", "")
    checkpoint = read_checkpoint(ws.path_for("model", name))
    assert checkpoint.method == args[0] and checkpoint.hparams["epochs"] == 2


def test_train_json_and_recorded_options(ws):
    result = invoke(ws, "lsq", *QUICK, "--squeeze-weight", "0.1", "--seed", "7", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["name"] == "lsq" and len(report["history"]) == 2
    assert report["hparams"]["squeeze_weight"] == 0.1 and report["hparams"]["seed"] == 7


def test_train_errors_are_one_line_with_exit_1(ws):
    assert invoke(ws, "baseline", *QUICK).exit_code == 0
    again = invoke(ws, "baseline", *QUICK)
    assert again.exit_code == 1 and "already exists" in again.output and "--force" in again.output
    assert invoke(ws, "baseline", *QUICK, "--force").exit_code == 0
    unknown = invoke(ws, "sorcery")
    assert unknown.exit_code == 1 and "unknown training method" in unknown.output
    missing = invoke(ws, "adv", "--adv", "fgsm-eps0.3", *QUICK)
    assert missing.exit_code == 1 and "defendr attack" in missing.output
    nothing = invoke(ws, "clp", "--resume")
    assert nothing.exit_code == 1 and "no interrupted run" in nothing.output
    assert "Traceback" not in again.output + unknown.output + missing.output


@pytest.mark.parametrize("method", recipe_names())
def test_each_method_help_lists_its_own_options(method):
    result = CliRunner().invoke(app, ["train", method, "--help"])
    assert result.exit_code == 0, result.output
    for f in cli_fields(get_recipe(method).options_class):
        assert flag_of(f) in result.output
    assert method in CliRunner().invoke(app, ["train", "--help"]).output


def test_a_flag_of_another_method_is_refused(ws):
    result = invoke(ws, "baseline", "--pair-weight", "0.5", *QUICK)
    assert result.exit_code == 1 and "--pair-weight" in result.output and "alp, clp" in result.output


def test_classifier_options_are_a_one_line_error_for_dunet(ws):
    result = invoke(ws, "dunet", "--arch", "resnet50", "--freeze-backbone")
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert "`train dunet` does not take --arch, --freeze-backbone" in result.output
    assert "baseline, adv, alp, clp, lsq" in result.output
    assert not ws.path_for("model", "dunet", create_dir=False).exists()
