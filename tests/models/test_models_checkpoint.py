"""Checkpoint format: weights_only round trip, validation, rebuild without flags, cache mismatch."""

from __future__ import annotations

import io

import pytest
import torch

from defendr_cli.core.errors import CorruptArtefactError, MismatchError, MissingArtefactError
from defendr_cli.core.fingerprint import bytes_fingerprint, file_fingerprint
from defendr_cli.core.io.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, read_checkpoint, save_checkpoint
from defendr_cli.core.io.checkpoint_record import Checkpoint
from defendr_cli.core.models.loading import check_matches_cache, load_model
from defendr_cli.core.models.registry import build_classifier


def classifier_payload(model, *, name="m", class_ids=("c0", "c1", "c2"), image_size=16, defense=None):
    config = {"arch": model.arch, "num_classes": model.num_classes, "image_size": image_size}
    if defense:
        config["defense"] = defense
    return {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "kind": "classifier", "name": name,
        "summary": "test model", "method": "baseline", "config": config,
        "state_dict": {k: v.clone() for k, v in model.state_dict().items()},
        "data": {"name": "tiny", "fingerprint": "abc", "class_ids": list(class_ids),
                 "class_names": list(class_ids), "image_size": image_size},
        "hparams": {"lr": 1e-3, "adv": []}, "history": [{"epoch": 1, "val_acc": 0.5}], "best": {"epoch": 1},
        "provenance": {"seed": 0, "software_version": "0.1.0", "created": "now", "parents": []},
    }


def test_round_trip_through_weights_only_load(workspace):
    model = build_classifier("tinycnn", 3).eval()
    path = workspace.path_for("model", "m")
    save_checkpoint(path, Checkpoint.from_payload(classifier_payload(model)))
    raw = torch.load(path, weights_only=True)  # no code is unpickled
    assert raw["format"] == CHECKPOINT_FORMAT
    loaded = load_model(workspace, "m")
    assert loaded.name == "m" and loaded.kind == "classifier" and loaded.path == path
    assert loaded.fingerprint == file_fingerprint(path)
    assert not loaded.module.training
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), model(x))
    assert load_model(None, path).fingerprint == loaded.fingerprint  # a path works too


def test_unreadable_and_foreign_files_are_corrupt(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(CorruptArtefactError):
        read_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(1)}, foreign)
    with pytest.raises(CorruptArtefactError, match="not a defendr checkpoint"):
        read_checkpoint(foreign)
    future = tmp_path / "future.pt"
    payload = classifier_payload(build_classifier("tinycnn", 3))
    payload["version"] = CHECKPOINT_VERSION + 1
    torch.save(payload, future)
    with pytest.raises(CorruptArtefactError, match="version"):
        read_checkpoint(future)
    with pytest.raises(MissingArtefactError):
        read_checkpoint(tmp_path / "absent.pt")


def test_missing_model_names_the_training_command(workspace):
    with pytest.raises(MissingArtefactError, match="defendr train alp"):
        load_model(workspace, "alp")


def test_weights_that_do_not_fit_the_config_are_corrupt(workspace):
    payload = classifier_payload(build_classifier("tinycnn", 3))
    payload["config"]["arch"] = "tinyresnet"
    save_checkpoint(workspace.path_for("model", "bad"), Checkpoint.from_payload(payload))
    with pytest.raises(CorruptArtefactError, match="do not fit"):
        load_model(workspace, "bad")


def test_unknown_kind_is_corrupt(workspace):
    payload = classifier_payload(build_classifier("tinycnn", 3))
    payload["kind"] = "hologram"
    save_checkpoint(workspace.path_for("model", "odd"), Checkpoint.from_payload(payload))
    with pytest.raises(CorruptArtefactError, match="unknown checkpoint kind"):
        load_model(workspace, "odd")


def test_save_refuses_existing_file_without_force(workspace):
    from defendr_cli.core.errors import ArtefactExistsError

    checkpoint = Checkpoint.from_payload(classifier_payload(build_classifier("tinycnn", 3)))
    path = workspace.path_for("model", "m")
    save_checkpoint(path, checkpoint)
    with pytest.raises(ArtefactExistsError):
        save_checkpoint(path, checkpoint, force=False)


def test_cache_mismatch_on_classes_and_image_size():
    data = Checkpoint.from_payload(classifier_payload(build_classifier("tinycnn", 3))).data
    check_matches_cache(data, "m", ["c0", "c1", "c2"], 16)
    with pytest.raises(MismatchError, match="other classes"):
        check_matches_cache(data, "m", ["c0", "c1", "c2", "c3"], 16)
    with pytest.raises(MismatchError, match="other classes"):
        check_matches_cache(data, "m", ["c0", "c2", "c1"], 16)
    with pytest.raises(MismatchError, match="16px"):
        check_matches_cache(data, "m", ["c0", "c1", "c2"], 32)


def test_defense_in_config_wraps_the_classifier(workspace):
    payload = classifier_payload(build_classifier("tinycnn", 3),
                                 defense={"name": "random-resize-pad", "variant": "paper", "passes": 1})
    save_checkpoint(workspace.path_for("model", "rand"), Checkpoint.from_payload(payload))
    loaded = load_model(workspace, "rand")
    assert type(loaded.module).__name__ != "Classifier"
    with torch.no_grad():
        assert loaded.module(torch.rand(2, 3, 16, 16)).shape == (2, 3)


def test_the_fingerprint_is_of_the_bytes_loaded_even_when_the_file_is_swapped(workspace, monkeypatch):
    """A checkpoint replaced right after it was read: the fingerprint must still be the loaded bytes'."""
    path = workspace.path_for("model", "m")
    save_checkpoint(path, Checkpoint.from_payload(classifier_payload(build_classifier("tinycnn", 3), name="m")))
    original = path.read_bytes()
    other = workspace.path_for("model", "other")
    torch.manual_seed(5)
    save_checkpoint(other, Checkpoint.from_payload(classifier_payload(build_classifier("tinycnn", 3), name="m")))
    real_load = torch.load

    def load_then_swap(*args, **kwargs):
        payload = real_load(*args, **kwargs)
        other.replace(path)  # another process replaces the file between read and hash
        return payload

    monkeypatch.setattr(torch, "load", load_then_swap)
    loaded = load_model(workspace, "m")
    assert loaded.fingerprint == bytes_fingerprint(original) != file_fingerprint(path)
    stored = real_load(io.BytesIO(original), weights_only=True)["state_dict"]
    assert all(torch.equal(v, stored[k]) for k, v in loaded.module.state_dict().items())


def test_an_incomplete_checkpoint_is_refused_by_the_loader(workspace):
    for flag in (False, "no", 0, None):
        payload = {**classifier_payload(build_classifier("tinycnn", 3)), "complete": flag}
        save_checkpoint(workspace.path_for("model", "m"), Checkpoint.from_payload(payload))
        with pytest.raises(CorruptArtefactError, match="did not complete"):
            load_model(workspace, "m")


@pytest.mark.parametrize("change", [{"config": "x"}, {"config": {"arch": 3, "num_classes": "many"}},
                                    {"config": {"arch": "tinycnn", "num_classes": [3]}}, {"name": 7},
                                    {"state_dict": ["w"]}, {"kind": ["classifier"]}, {"version": True},
                                    {"state_dict": {"conv.weight": "text"}}])
def test_payloads_with_odd_contents_are_one_line_corrupt_errors(workspace, change):
    payload = {**classifier_payload(build_classifier("tinycnn", 3)), **change}
    torch.save(payload, workspace.path_for("model", "odd"))
    with pytest.raises(CorruptArtefactError) as info:
        load_model(workspace, "odd")
    assert "\n" not in str(info.value)
