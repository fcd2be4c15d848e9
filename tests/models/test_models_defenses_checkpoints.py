"""Denoised and ensemble checkpoints: round trips through load_model, fingerprint/tamper checks."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from defendr_cli.core.errors import ArtefactExistsError, InputError, MismatchError, MissingArtefactError
from defendr_cli.core.io.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, read_checkpoint, save_checkpoint
from defendr_cli.core.io.checkpoint_record import Checkpoint, Provenance
from defendr_cli.core.models.loading import load_model
from defendr_cli.core.models.denoised import DenoisedClassifier, denoised_config
from defendr_cli.core.models.dunet import DUNet, DUNetConfig
from defendr_cli.core.models.ensemble import Ensemble
from defendr_cli.core.models.ensemble_manifest import create_ensemble
from defendr_cli.core.models.references import make_reference
from defendr_cli.core.models.registry import build_classifier
from defendr_cli.core.models.randomization import RandomResizePad


def _save_classifier(workspace, name, *, classes=3, size=16, seed=0, defense=None, kind="classifier"):
    torch.manual_seed(seed)
    model = build_classifier("tinycnn", classes)
    config = {"arch": "tinycnn", "num_classes": classes, "image_size": size}
    if defense:
        config["defense"] = defense
    payload = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "kind": kind, "name": name,
        "summary": name, "method": "baseline", "config": config, "state_dict": model.state_dict(),
        "data": {"name": "syn", "fingerprint": "f" * 16, "class_ids": [f"c{i}" for i in range(classes)],
                 "class_names": [f"n{i}" for i in range(classes)], "image_size": size},
        "hparams": {}, "history": [], "best": None,
        "provenance": {"seed": seed, "software_version": "test", "created": "now", "parents": []},
    }
    return save_checkpoint(workspace.path_for("model", name), Checkpoint.from_payload(payload))


def _save_denoised(workspace, name="dn", target="base"):
    target_path = workspace.path_for("model", target)
    denoiser = DUNet(DUNetConfig(width_mult=0.0625))
    ref = make_reference(workspace, "target", target_path)
    checkpoint = replace(read_checkpoint(target_path), kind="denoised", name=name, method="dunet",
                         config=denoised_config(denoiser, ref), state_dict=denoiser.state_dict(),
                         provenance=Provenance(seed=0, software_version="test", created="now", parents=(ref,)))
    save_checkpoint(workspace.path_for("model", name), checkpoint)
    return denoiser


def test_denoised_round_trip_gives_the_same_outputs(workspace):
    _save_classifier(workspace, "base")
    denoiser = _save_denoised(workspace)
    loaded = load_model(workspace, "dn")
    assert loaded.kind == "denoised" and isinstance(loaded.module, DenoisedClassifier)
    x = torch.rand(2, 3, 16, 16)
    target = load_model(workspace, "base").module
    expected = target(denoiser.eval()(x))
    assert torch.allclose(loaded.module(x), expected, atol=1e-6)
    assert loaded.module.last_conv_stage is loaded.module.classifier.last_conv_stage


def test_denoised_detects_a_changed_or_missing_target(workspace):
    _save_classifier(workspace, "base")
    _save_denoised(workspace)
    _save_classifier(workspace, "base", seed=1)  # retrained target: another fingerprint
    with pytest.raises(MismatchError, match="fingerprint"):
        load_model(workspace, "dn")
    workspace.path_for("model", "base").unlink()
    with pytest.raises(MissingArtefactError):
        load_model(workspace, "dn")


def test_ensemble_manifest_round_trip(workspace):
    for i, name in enumerate(("a", "b", "c")):
        _save_classifier(workspace, name, seed=i)
    path, manifest = create_ensemble(workspace, "best", ["a", "b", "c"], weights=[2, 1, 1])
    assert path == workspace.path_for("model", "best")
    assert manifest.config["members"] == ["a", "b", "c"]
    assert [p.role for p in manifest.provenance.parents] == ["member"] * 3
    assert path.stat().st_size < 10_000  # a manifest, not weights
    loaded = load_model(workspace, "best")
    assert loaded.kind == "ensemble" and isinstance(loaded.module, Ensemble)
    x = torch.rand(2, 3, 16, 16)
    members = [load_model(workspace, n).module for n in ("a", "b", "c")]
    expected = (0.5 * members[0](x).softmax(1) + 0.25 * members[1](x).softmax(1)
                + 0.25 * members[2](x).softmax(1)).log()
    assert torch.allclose(loaded.module(x), expected, atol=1e-5)


def test_ensemble_detects_tampering_and_missing_members(workspace):
    _save_classifier(workspace, "a")
    _save_classifier(workspace, "b", seed=1)
    create_ensemble(workspace, "best", ["a", "b"])
    _save_classifier(workspace, "b", seed=2)
    with pytest.raises(MismatchError, match="'b'"):
        load_model(workspace, "best")
    workspace.path_for("model", "b").unlink()
    with pytest.raises(MissingArtefactError, match="'b'"):
        load_model(workspace, "best")


def test_ensemble_refuses_incompatible_members_and_bad_input(workspace):
    _save_classifier(workspace, "a")
    _save_classifier(workspace, "four", classes=4)
    _save_classifier(workspace, "big", size=24)
    with pytest.raises(MismatchError, match="class"):
        create_ensemble(workspace, "e", ["a", "four"])
    with pytest.raises(MismatchError, match="image sizes"):
        create_ensemble(workspace, "e", ["a", "big"])
    with pytest.raises(InputError):
        create_ensemble(workspace, "e", ["a"])
    with pytest.raises(InputError):
        create_ensemble(workspace, "e", ["a", "a"])
    with pytest.raises(ArtefactExistsError):
        create_ensemble(workspace, "a", ["a", "big"])  # exists: refused before loading anything
    with pytest.raises(InputError):
        create_ensemble(workspace, "a", ["a", "big"], force=True)  # would overwrite its own member
    with pytest.raises(MissingArtefactError):
        create_ensemble(workspace, "e", ["a", "nope"])
    assert not workspace.path_for("model", "e", create_dir=False).exists()


def test_classifier_and_randomized_kinds_wrap_the_defense(workspace):
    spec = {"name": "random-resize-pad", "variant": "competition", "passes": 2}
    _save_classifier(workspace, "rand", defense=spec)
    _save_classifier(workspace, "rand2", defense=spec, kind="randomized")
    for name in ("rand", "rand2"):
        module = load_model(workspace, name).module
        assert isinstance(module, RandomResizePad) and module.variant == "competition" and module.passes == 2
        assert module(torch.rand(2, 3, 16, 16)).shape == (2, 3)
