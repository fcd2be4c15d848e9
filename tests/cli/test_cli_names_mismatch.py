"""Artefact names that would escape or hide (`..`, `/`, spaces, empty, leading dot, too long) are
refused with one line by every command that takes a name; models meet only caches and members of
their own classes (MismatchError, one line)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from typer.testing import CliRunner

from defendr_cli.cli.app import app
from defendr_cli.core.errors import InputError
from defendr_cli.core.io.checkpoint import read_checkpoint, save_checkpoint
from defendr_cli.core.workspace import Workspace, validate_name
from tests.attacks.attack_helpers import make_cache, make_checkpoint

runner = CliRunner()

BAD_NAMES = ["../escape", "a/b", "with space", "", ".hidden", "a..b", "x" * 101]
NAME_COMMANDS = {
    "prepare": lambda name: ["prepare", "--name", name],
    "train": lambda name: ["train", "baseline", "--name", name],
    "ensemble": lambda name: ["ensemble", name, "--members", "a,b"],
    "import": lambda name: ["import", name, "--arch", "torchvision:resnet18"],
    "evaluate": lambda name: ["evaluate", "--model", "m", "--name", name],
    "gradcam": lambda name: ["gradcam", "--model", "m", "--attack", "a", "--name", name],
}


def test_validate_name_accepts_plain_names():
    for name in ("baseline", "alp-v2", "pgd-eps8_255-s10", "run.1", "x" * 100):
        assert validate_name(name) == name
    for bad in ("a/b", "-dash", "a+b", "é"):
        with pytest.raises(InputError, match="--name"):
            validate_name(bad)


@pytest.mark.parametrize("command", sorted(NAME_COMMANDS))
@pytest.mark.parametrize("name", BAD_NAMES, ids=["dotdot", "slash", "space", "empty", "dot", "inner-dotdot", "long"])
def test_bad_names_are_one_line_errors(tmp_path, command, name):
    result = runner.invoke(app, ["--workdir", str(tmp_path), *NAME_COMMANDS[command](name)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("error (invalid input): "), result.output
    assert "--name" in lines[0] or "NAME" in lines[0]
    assert not (tmp_path.parent / "escape.h5").exists() and not (tmp_path / "escape.pt").exists()


@pytest.fixture(scope="module")
def mismatched(tmp_path_factory):
    """A tiny cache, a model trained on it ('baseline') and one trained on other classes ('other')."""
    ws = Workspace(tmp_path_factory.mktemp("mismatch"))
    make_cache(ws)
    make_checkpoint(ws, train_steps=2)
    make_checkpoint(ws, "b2", train_steps=2)
    b2 = read_checkpoint(ws.path_for("model", "b2"))
    other = replace(b2, name="other", data=replace(b2.data, name="other", class_ids=("x0", "x1", "x2")))
    save_checkpoint(ws.path_for("model", "other"), other)
    ok = runner.invoke(app, ["--workdir", str(ws.root), "attack", "fgsm", "--eps", "0.01", "--device", "cpu"])
    assert ok.exit_code == 0, ok.output
    return ws


@pytest.mark.parametrize("args", [
    ["attack", "fgsm", "--eps", "0.02", "--model", "other"],
    ["evaluate", "--model", "other", "--adv", "none"],
    ["gradcam", "--model", "other", "--attack", "fgsm-eps0.01-baseline-test"],
], ids=["attack", "evaluate", "gradcam"])
def test_model_on_a_cache_of_other_classes_is_a_mismatch(mismatched, args):
    result = runner.invoke(app, ["--workdir", str(mismatched.root), *args, "--device", "cpu"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1, result.output
    assert lines[-1].startswith("error (mismatch): model 'other' was trained on other classes"), result.output
    assert len([line for line in lines if line.startswith("error")]) == 1


def test_ensemble_of_models_trained_on_different_caches_is_a_mismatch(mismatched):
    result = runner.invoke(app, ["--workdir", str(mismatched.root), "ensemble", "e", "--members", "baseline,other"])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error (mismatch): ensemble members 'baseline' and 'other'")
    assert not mismatched.path_for("model", "e", create_dir=False).exists()


def test_ensemble_of_one_model_is_refused(mismatched):
    result = runner.invoke(app, ["--workdir", str(mismatched.root), "ensemble", "e", "--members", "baseline"])
    assert result.exit_code == 1
    assert result.output.strip() == "error (invalid input): an ensemble needs at least two members, got 1: baseline"
