"""core.io.checkpoint_record.Checkpoint: the typed checkpoint writes the very payload (and bytes) the
dicts of the writers wrote before it, reads back to the same bytes, and old payloads still load."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from defendr_cli.core.errors import CorruptArtefactError
from defendr_cli.core.fingerprint import file_fingerprint
from defendr_cli.core.io.checkpoint import read_checkpoint, save_checkpoint
from defendr_cli.core.io.checkpoint_record import Checkpoint, DataRecord, Provenance, Reference
from defendr_cli.core.models.denoised import DenoisedClassifier
from defendr_cli.core.models.dunet import DUNet, DUNetConfig
from defendr_cli.core.models.loading import load_model
from defendr_cli.core.models.registry import build_classifier


def _bytes(payload: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def _keys(value):
    """Every dict's keys in order, nested: equal dicts with another key order differ here."""
    if isinstance(value, dict):
        return [(k, _keys(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_keys(v) for v in value]
    return None


def _training(complete: bool):
    """(the dict core.training.loop wrote before the record, the Checkpoint it builds now), same objects."""
    state, config = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(2)}, {"arch": "tinycnn", "num_classes": 3}
    ids, names = ["c0", "c1", "c2"], ["zero", "one", "two"]
    hparams, history, best = {"seed": 3, "data": None, "name": "m", "method": "baseline"}, [{"epoch": 1}], {"epoch": 1}
    parents = [{"role": "data", "name": "syn", "fingerprint": "f" * 16},
               {"role": "adversarial-set", "name": "fgsm-eps0.1-baseline-train", "fingerprint": "a" * 16}]
    old = {"format": "defendr-checkpoint", "version": 1, "kind": "classifier", "name": "m", "summary": "m: 50%",
           "method": "baseline", "config": config, "state_dict": state,
           "data": {"name": "syn", "fingerprint": "f" * 16, "class_ids": ids, "class_names": names, "image_size": 16},
           "hparams": hparams, "history": history, "best": best, "complete": complete,
           "provenance": {"seed": 3, "software_version": "0.1.0", "created": "2026-01-01T00:00:00+00:00",
                          "parents": parents}}
    new = Checkpoint(kind="classifier", name="m", summary="m: 50%", method="baseline", config=config, state_dict=state,
                     data=DataRecord("syn", "f" * 16, tuple(ids), tuple(names), 16), hparams=hparams, history=history,
                     best=best, complete=complete,
                     provenance=Provenance(3, "0.1.0", "2026-01-01T00:00:00+00:00",
                                           tuple(Reference.from_dict(p) for p in parents)))
    return old, new


def _imported(bound: bool):
    """The dicts core.stages.import_model wrote (bound to a cache or not) and the Checkpoint it builds now."""
    config = {"source": "torchvision", "arch": "resnet18", "num_outputs": 3, "normalize": None, "cam_layer": "layer4",
              "cam_note": "", "class_map": None, "exported": None}
    hparams = {"weights": "w.pth", "exported": None}
    data = {"name": "syn", "fingerprint": "f" * 16, "class_ids": ["a", "b"], "class_names": ["a", "b"],
            "image_size": 16} if bound else {"image_size": 16}
    record = DataRecord("syn", "f" * 16, ("a", "b"), ("a", "b"), 16) if bound else DataRecord(image_size=16)
    old = {"format": "defendr-checkpoint", "version": 1, "kind": "imported", "name": "r18", "summary": "imported",
           "method": "imported", "config": config, "state_dict": {}, "data": data, "hparams": hparams,
           "history": [], "best": None,
           "provenance": {"seed": None, "software_version": "0.1.0", "created": "2026-01-01T00:00:00Z", "parents": []}}
    new = Checkpoint(kind="imported", name="r18", summary="imported", method="imported", config=config,
                     state_dict={}, data=record, hparams=hparams, history=[], best=None,
                     provenance=Provenance(None, "0.1.0", "2026-01-01T00:00:00Z"))
    return old, new


def _ensemble():
    """The manifest core.models.ensemble_manifest wrote (one weights list in config and hparams)."""
    weights, members = [0.5, 0.5], ["a", "b"]
    parents = [{"role": "member", "name": "a", "fingerprint": "1" * 16},
               {"role": "member", "name": "b", "fingerprint": "2" * 16}]
    data = {"name": "syn", "fingerprint": "f" * 16, "class_ids": ["x", "y"], "class_names": ["x", "y"], "image_size": 8}
    old = {"format": "defendr-checkpoint", "version": 1, "kind": "ensemble", "name": "e", "summary": "ensemble",
           "method": "ensemble", "config": {"members": members, "weights": weights, "combine": "probs"},
           "state_dict": {}, "data": data, "hparams": {"combine": "probs", "weights": weights},
           "history": [], "best": None,
           "provenance": {"seed": None, "software_version": "0.1.0", "created": "2026-01-01T00:00:00Z",
                          "parents": parents}}
    new = Checkpoint(kind="ensemble", name="e", summary="ensemble", method="ensemble", config=old["config"],
                     state_dict={}, data=DataRecord.from_dict(data), hparams=old["hparams"], history=[], best=None,
                     provenance=Provenance(None, "0.1.0", "2026-01-01T00:00:00Z",
                                           tuple(Reference.from_dict(p) for p in parents)))
    return old, new


WRITERS = {"training side file": lambda: _training(False), "training final": lambda: _training(True),
           "import unbound": lambda: _imported(False), "import bound": lambda: _imported(True), "ensemble": _ensemble}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_new_files_hold_the_very_payload_and_bytes_the_old_dicts_gave(writer, tmp_path):
    old, new = WRITERS[writer]()
    assert new.to_payload() == old and _keys(new.to_payload()) == _keys(old)
    path = save_checkpoint(tmp_path / "m.pt", new)
    assert path.read_bytes() == _bytes(old)  # torch.save of the old dict: the same file, byte for byte
    assert Checkpoint.from_payload(old) == new


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_file_read_and_written_again_keeps_its_bytes(writer, tmp_path):
    _, new = WRITERS[writer]()
    first = save_checkpoint(tmp_path / "a.pt", new)
    again = save_checkpoint(tmp_path / "b.pt", read_checkpoint(first))
    assert again.read_bytes() == first.read_bytes()
    raw = torch.load(first, weights_only=True)
    assert _keys(read_checkpoint(first).to_payload()) == _keys(raw)


def test_finishing_a_training_run_writes_what_the_dict_update_wrote(tmp_path):
    """core.training.loop rewrites the side file complete (`replace`); it was `{**payload, history, complete}`."""
    side = save_checkpoint(tmp_path / "side.pt", _training(False)[1])
    history = [{"epoch": 1}, {"epoch": 2}]
    finished = save_checkpoint(tmp_path / "m.pt", replace(read_checkpoint(side), history=history, complete=True))
    old = {**torch.load(side, weights_only=True), "history": history, "complete": True}
    assert finished.read_bytes() == _bytes(old)


def test_complete_reads_as_recorded():
    payload = _training(True)[0]
    assert Checkpoint.from_payload(payload).complete is True
    absent = {k: v for k, v in payload.items() if k != "complete"}
    assert Checkpoint.from_payload(absent).complete is None and Checkpoint.from_payload(absent).is_complete
    assert "complete" not in Checkpoint.from_payload(absent).to_payload()
    for flag in (False, "no", 0, None):
        checkpoint = Checkpoint.from_payload({**payload, "complete": flag})
        assert checkpoint.complete is False and not checkpoint.is_complete


def test_unknown_top_level_keys_are_kept_after_the_known_ones():
    payload = {**_training(True)[0], "future": {"x": 1}}
    written = Checkpoint.from_payload(payload).to_payload()
    assert written == payload and list(written)[-1] == "future"


@pytest.mark.parametrize("provenance, words", [({"seed": "3"}, "'seed'"), ({"created": 5}, "'created'"),
                                               ({"software_version": ["1"]}, "'software_version'")])
def test_provenance_fields_have_their_types(provenance, words):
    payload = _training(True)[0]
    payload = {**payload, "provenance": {**payload["provenance"], **provenance}}
    with pytest.raises(CorruptArtefactError, match=words):
        Checkpoint.from_payload(payload, "models/m.pt")


def _old_classifier(workspace, name="old"):
    """A payload of an early version: the required keys and weights, nothing else (saved by torch)."""
    torch.manual_seed(1)
    model = build_classifier("tinycnn", 3).eval()
    path = workspace.path_for("model", name)
    torch.save({"format": "defendr-checkpoint", "version": 1, "kind": "classifier", "name": name,
                "config": {"arch": "tinycnn", "num_classes": 3, "image_size": 16},
                "state_dict": model.state_dict()}, path)
    return model, path


def test_an_old_payload_without_optional_keys_still_loads(workspace):
    model, path = _old_classifier(workspace)
    checkpoint = read_checkpoint(path)
    assert (checkpoint.summary, checkpoint.method, checkpoint.data, checkpoint.provenance.parents) == \
        ("", None, DataRecord(), ())
    assert checkpoint.is_complete and checkpoint.hparams == {} and checkpoint.history == [] and checkpoint.best is None
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(load_model(workspace, "old").module(x), model(x))
    written = checkpoint.to_payload()  # written again it is in the current format, defaults filled in
    assert list(written) == ["format", "version", "kind", "name", "summary", "method", "config", "state_dict",
                             "data", "hparams", "history", "best", "provenance"]
    assert written["provenance"] == {"seed": None, "software_version": None, "created": None, "parents": []}


def test_an_old_denoiser_naming_its_target_only_in_its_config_still_loads(workspace):
    _, target = _old_classifier(workspace, "base")
    denoiser = DUNet(DUNetConfig(width_mult=0.0625))
    config = {"denoiser": {"arch": "dunet", **denoiser.config.to_dict()},
              "target": {"name": "base", "fingerprint": file_fingerprint(target)}}
    torch.save({"format": "defendr-checkpoint", "version": 1, "kind": "denoised", "name": "dn", "config": config,
                "state_dict": denoiser.state_dict()}, workspace.path_for("model", "dn"))
    loaded = load_model(workspace, "dn")
    assert isinstance(loaded.module, DenoisedClassifier) and loaded.checkpoint.provenance.parents == ()
    del config["target"]["fingerprint"]
    torch.save({"format": "defendr-checkpoint", "version": 1, "kind": "denoised", "name": "dn", "config": config,
                "state_dict": denoiser.state_dict()}, workspace.path_for("model", "dn"))
    with pytest.raises(CorruptArtefactError, match="fingerprint"):
        load_model(workspace, "dn")


def test_only_the_record_and_the_schema_index_a_checkpoint_payload():
    """Issue 19: no payload dict crosses a layer; the other modules read Checkpoint attributes."""
    package = Path(__file__).resolve().parents[2] / "defendr_cli"
    allowed = {package / "core" / "io" / "checkpoint_record.py", package / "core" / "io" / "checkpoint_schema.py"}
    hits = [f"{path.relative_to(package)}:{number}" for path in sorted(package.rglob("*.py")) if path not in allowed
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if re.search(r'payload\[|\["provenance"\]', line)]
    assert not hits, hits
