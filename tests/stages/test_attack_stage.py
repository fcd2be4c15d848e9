"""The attack stage (core/stages/attack.py): aligned, attributed, resumable adversarial sets; clear errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from defendr_cli.core.attacks.eps import parse_eps_list
from defendr_cli.core.errors import (
    ArtefactExistsError,
    CorruptArtefactError,
    InputError,
    MismatchError,
    MissingArtefactError,
)
from defendr_cli.core.io.adversarial import (
    AdvSetReader,
    AdvSetWriter,
    find_adv_sets,
    partial_adv_path,
    read_adv_info,
)
from defendr_cli.core.io.reader import SplitReader
from defendr_cli.core.models.loading import load_model
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.stages.attack import AttackStageConfig, run_attack
from defendr_cli.core.stages.attack_shards import copy_shard
from defendr_cli.core.workspace import Workspace
from tests.attacks.attack_helpers import make_cache, make_checkpoint

CPU = Runtime()


@pytest.fixture
def ws(workspace):
    make_cache(workspace)
    make_checkpoint(workspace)
    return workspace


def _config(**kw) -> AttackStageConfig:
    base = dict(attack="fgsm", eps=parse_eps_list("0.02,8/255"), batch_size=8)
    base.update(kw)
    return AttackStageConfig(**base)


def test_fgsm_stage_writes_aligned_sets_with_attributes(ws):
    results = run_attack(ws, _config(), CPU)
    assert [r.name for r in results] == ["fgsm-eps0.02-baseline-test", "fgsm-eps8_255-baseline-test"]
    cache = ws.path_for("data", "tiny")
    model = load_model(ws, "baseline").module
    with SplitReader(cache, "test") as clean:
        clean_images = clean.read(np.arange(len(clean)))
        for result, eps in zip(results, (0.02, 8 / 255)):
            info = read_adv_info(result.path)
            assert info.attack == "fgsm" and info.eps == pytest.approx(eps) and info.dtype == "float16"
            assert info.source_model == "baseline" and info.clean_fingerprint == clean.info.fingerprint
            assert len(info.source_model_fingerprint) == 16 and info.seed == 0 and info.count == 30
            assert info.summary.startswith("adversarial set: fgsm") and 0 <= info.success_rate <= 1
            with AdvSetReader(result.path) as adv:
                assert np.array_equal(adv.clean_indices, np.arange(30))
                assert np.array_equal(adv.labels, clean.labels)
                images = adv.read(np.arange(30))
                assert ((images - clean_images).abs() <= eps + 1e-3).all()  # float16 storage tolerance
                assert images.min() >= 0 and images.max() <= 1
                with torch.no_grad():
                    stored_pred = model(images).argmax(1).numpy()
                assert np.array_equal(stored_pred != clean.labels, adv.success)  # success on stored images
            assert result.preview is not None and result.preview.stat().st_size > 1000
    assert [i.name for i in find_adv_sets(ws, split="test", source_model="baseline")] == [r.name for r in results]
    assert find_adv_sets(ws, split="train") == []


def test_eps_zero_changes_no_prediction(ws):
    (result,) = run_attack(ws, _config(eps=parse_eps_list("0")), CPU)
    assert result.success_rate == 0.0 and result.adv_accuracy == result.clean_accuracy
    with h5py.File(result.path, "r") as handle:
        assert np.array_equal(handle["adv_pred"][...], handle["clean_pred"][...])


def test_refuses_overwrite_without_force_and_missing_artefacts_name_the_command(ws, workspace):
    run_attack(ws, _config(eps=parse_eps_list("0.02")), CPU)
    with pytest.raises(ArtefactExistsError, match="--force"):
        run_attack(ws, _config(eps=parse_eps_list("0.02")), CPU)
    run_attack(ws, _config(eps=parse_eps_list("0.02"), force=True), CPU)
    with pytest.raises(MissingArtefactError, match="defendr train alp"):
        run_attack(ws, _config(model="alp"), CPU)
    with pytest.raises(MissingArtefactError, match="defendr prepare"):
        run_attack(ws, _config(data="nope"), CPU)
    with pytest.raises(InputError, match="does not take --steps"):
        run_attack(ws, _config(steps=3), CPU)


class _StopAfter:
    """A reporter whose task raises KeyboardInterrupt after `n` advances (a Ctrl-C mid-run)."""

    def __init__(self, n: int) -> None:
        self.n, self.notes = n, []

    def note(self, message: str) -> None:
        self.notes.append(message)

    def task(self, description, total=None):
        outer = self

        class _Task:
            calls = 0

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return None

            def update(self, **fields):
                pass

            def advance(self, n=1, **fields):
                if n == 0 and _Task.calls == 0:
                    return
                _Task.calls += 1
                if _Task.calls > outer.n:
                    raise KeyboardInterrupt

        return _Task()


def _contents(path):
    with h5py.File(path, "r") as handle:
        data = {key: handle[key][...] for key in handle.keys()}
        attrs = {key: handle.attrs[key] for key in handle.attrs.keys()}
    return data, attrs


def test_resume_after_interruption_equals_one_run(ws, tmp_path):
    config = _config(attack="pgd", eps=parse_eps_list("0.03"), steps=2, targeted="random")
    with pytest.raises(KeyboardInterrupt):
        run_attack(ws, config, CPU, reporter=_StopAfter(2))
    final = ws.path_for("adv", "pgd-eps0.03-s2-trand-baseline-test")
    assert not final.exists() and partial_adv_path(final).exists()
    with h5py.File(partial_adv_path(final), "r") as handle:
        assert int(handle.attrs["done"]) == 24  # three of four batches written
    (resumed,) = run_attack(ws, _config(**{**config.__dict__, "resume": True}), CPU)
    assert resumed.status == "resumed" and not partial_adv_path(final).exists()

    other = Workspace(tmp_path / "other")
    make_cache(other)
    make_checkpoint(other)
    (straight,) = run_attack(other, config, CPU)
    data_a, attrs_a = _contents(final)
    data_b, attrs_b = _contents(straight.path)
    assert data_a.keys() == data_b.keys()
    for key in data_a:
        assert np.array_equal(data_a[key], data_b[key]), key
    for key in attrs_a:
        assert np.array_equal(attrs_a[key], attrs_b[key]), key
    assert (data_a["targets"] >= 0).all()
    # resuming a complete set keeps it
    (kept,) = run_attack(ws, _config(**{**config.__dict__, "resume": True}), CPU)
    assert kept.status == "kept"


def test_resume_keeps_a_complete_set_only_with_the_same_settings(ws):
    config = _config(attack="bim", eps=parse_eps_list("0.03,0.05"), steps=2, preview=False)
    written = run_attack(ws, config, CPU)
    before = [p.stat().st_mtime_ns for p in (r.path for r in written)]
    kept = run_attack(ws, _config(**{**config.__dict__, "resume": True}), CPU)
    assert [r.status for r in kept] == ["kept", "kept"]
    assert [r.success_rate for r in kept] == pytest.approx([r.success_rate for r in written])
    assert [r.path.stat().st_mtime_ns for r in kept] == before
    for change in ({"step_size": 0.01}, {"dtype": "uint8"}, {"seed": 1}):
        with pytest.raises(MismatchError, match="bim-eps0.03-s2-baseline-test exists with other settings") as err:
            run_attack(ws, _config(**{**config.__dict__, "resume": True, **change}), CPU)
        assert "--force" in err.value.hint and next(iter(change)) in str(err.value)
    assert [r.path.stat().st_mtime_ns for r in written] == before  # nothing was rewritten
    (forced, _) = run_attack(ws, _config(**{**config.__dict__, "step_size": 0.01, "force": True}), CPU)
    assert read_adv_info(forced.path).step_size == pytest.approx(0.01)


def test_normalized_eps_uint8_predicted_labels_and_splits(ws):
    config = _config(attack="bim", eps=parse_eps_list("0.12"), eps_space="normalized", steps=2,
                     dtype="uint8", label_mode="predicted", splits=["train", "test"], preview=False)
    results = run_attack(ws, config, CPU)
    assert [r.name for r in results] == ["bim-eps0.12n-s2-pred-baseline-train", "bim-eps0.12n-s2-pred-baseline-test"]
    info = read_adv_info(results[0].path)
    assert info.eps == pytest.approx([0.12 * 0.229, 0.12 * 0.224, 0.12 * 0.225])
    assert info.eps_space == "normalized" and info.dtype == "uint8" and info.label_mode == "predicted"
    with AdvSetReader(results[0].path) as adv, SplitReader(ws.path_for("data", "tiny"), "train") as clean:
        diff = (adv.read(np.arange(len(adv))) - clean.read(np.arange(len(clean)))).abs()
        bound = torch.tensor(info.eps).view(1, 3, 1, 1) + 0.5 / 255 + 1e-6
        assert (diff <= bound).all() and len(adv) == 18


def test_damaged_shard_files_raise_corrupt_artefact_errors(tmp_path):
    writer = AdvSetWriter(tmp_path / "set.h5", count=4, image_shape=(3, 2, 2), dtype="float16", params={"name": "set"})
    try:
        garbage = tmp_path / "garbage.h5.partial"
        garbage.write_bytes(b"not hdf5")
        with pytest.raises(CorruptArtefactError, match="not a readable HDF5 shard file"):
            copy_shard(garbage, writer, expected=(0, 4))
        no_done = tmp_path / "no-done.h5.partial"
        with h5py.File(no_done, "w") as handle:
            handle.create_dataset("images", data=np.zeros((4, 3, 2, 2), np.float16))
        with pytest.raises(CorruptArtefactError, match="lacks labels"):
            copy_shard(no_done, writer, expected=(0, 4))
        with h5py.File(no_done, "a") as handle:
            for key in ("labels", "clean_indices", "success", "clean_pred", "adv_pred", "targets"):
                handle.create_dataset(key, data=np.zeros(4, np.int64))
        with pytest.raises(CorruptArtefactError, match="no valid 'done' attribute"):
            copy_shard(no_done, writer, expected=(0, 4))
    finally:
        writer.close()
