"""Profiles as data with --set overrides; the ledger that makes reproduce idempotent."""

from __future__ import annotations

import os

import pytest

from defendr_cli.core.errors import InputError
from defendr_cli.core.pipeline.profile import apply_overrides, available_profiles, load_profile, parse_override
from defendr_cli.core.pipeline.state import PipelineLedger, stage_key


def test_shipped_profiles_load_and_share_keys():
    assert {"quick", "paper"} <= set(available_profiles())
    quick, paper = load_profile("quick"), load_profile("paper")
    assert set(quick) == set(paper)
    assert paper["data"]["classes"] == 201 and paper["data"]["image_size"] == 299
    assert paper["data"]["split"] == "54,6,10" and paper["model"]["arch"] == "resnet101"


def test_overrides_parse_json_and_reject_unknown_keys():
    assert parse_override("train.epochs=3") == (["train", "epochs"], 3)
    assert parse_override("model.arch=resnet18") == (["model", "arch"], "resnet18")
    settings = apply_overrides(load_profile("quick"), ["train.epochs=2", "evaluate.steps=[5]"])
    assert settings["train"]["epochs"] == 2 and settings["evaluate"]["steps"] == [5]
    assert load_profile("quick")["train"]["epochs"] == 8  # the shipped profile is untouched
    with pytest.raises(InputError):
        apply_overrides(load_profile("quick"), ["trian.epochs=2"])
    with pytest.raises(InputError):
        parse_override("train.epochs")
    with pytest.raises(InputError):
        load_profile("nope")


@pytest.mark.parametrize("override", ["train.epochs=abc", "train.epochs=2.5", "train.epochs=true", "train.lr=NaN",
                                      "train.lr=Infinity", "train.lr=[1]", "evaluate.steps=5", "model.arch=[1]",
                                      "data.split=null", "evaluate.steps=[5, NaN]"])
def test_override_values_must_have_the_profile_type(override):
    with pytest.raises(InputError, match=override.split("=")[0]):
        apply_overrides(load_profile("quick"), [override])


def test_override_values_of_the_right_type_are_converted_as_the_profile_needs():
    settings = apply_overrides(load_profile("quick"), ["train.lr=1", "data.split=100", 'model.arch="tinycnn"'])
    assert settings["train"]["lr"] == 1.0 and isinstance(settings["train"]["lr"], float)
    assert settings["data"]["split"] == "100" and settings["model"]["arch"] == "tinycnn"


def test_ledger_detects_changed_params_inputs_and_outputs(tmp_path):
    source = tmp_path / "in.h5"
    source.write_bytes(b"abc")
    out = tmp_path / "out.pt"
    out.write_bytes(b"weights")
    key = stage_key({"epochs": 3}, [source])
    ledger = PipelineLedger.open(tmp_path)
    assert not ledger.is_current("train:baseline", key)
    ledger.record("train:baseline", key, [out])
    reopened = PipelineLedger.open(tmp_path)
    assert reopened.is_current("train:baseline", key)
    assert not reopened.is_current("train:baseline", stage_key({"epochs": 4}, [source]))
    source.write_bytes(b"abcd")
    assert stage_key({"epochs": 3}, [source]) != key
    out.write_bytes(b"other weights")
    assert not reopened.is_current("train:baseline", key)
    os.remove(out)
    assert not reopened.is_current("train:baseline", key)
