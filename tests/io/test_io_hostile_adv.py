"""Adversarial sets that lie are refused in one line (issue 23, items 4-7): bad pixels, another image
size, duplicate or out-of-range clean rows, content that no longer matches its fingerprint,
attributes of the wrong type, a raised `done` in a partial file, an empty clean fingerprint.

Every case starts from a sound tiny workspace (4 classes, 16 px, tinycnn) copied per test, edits
one thing with h5py, and runs the real command or reader.
"""

from __future__ import annotations

import json
import os
import shutil

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from defendr_cli.cli.app import app
from defendr_cli.core.errors import CorruptArtefactError, MismatchError
from defendr_cli.core.io.adversarial import AdvSetReader, AdvSetWriter, find_adv_sets, partial_adv_path, read_adv_info
from defendr_cli.core.io.verify import verify_partial_adv_set
from defendr_cli.core.training.data import resolve_adv_sets
from defendr_cli.core.workspace import Workspace
from tests.evaluation import eval_builders as B

runner = CliRunner()
SET = "fgsm-eps8_255-baseline-test"


@pytest.fixture(scope="module")
def sound(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("hostile_adv") / "ws")
    cache = B.write_cache(ws, test=4)
    model = B.train_classifier(cache, steps=20)
    B.save_classifier(ws, "baseline", model, cache)
    B.write_adv_set(ws, model, cache)
    B.write_adv_set(ws, model, cache, attack="pgd", eps=16 / 255, eps_label="16/255", steps=2)
    B.write_adv_set(ws, model, cache, split="train")
    return ws


@pytest.fixture
def ws(sound, tmp_path):
    copy = Workspace(tmp_path / "ws")
    shutil.copytree(sound.root, copy.root)
    return copy


def edit(path, change, *, keep_mtime=False):
    """Apply `change(handle)` to the HDF5 file at `path` (optionally restoring its mtime)."""
    before = path.stat()
    with h5py.File(path, "r+") as handle:
        change(handle)
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def replace(key, values):
    def change(handle):
        del handle[key]
        handle.create_dataset(key, data=values)
    return change


def set_attr(key, value):
    def change(handle):
        handle.attrs[key] = value
    return change


def evaluate(ws, *args):
    return runner.invoke(app, ["--workdir", str(ws.root), "evaluate", "--model", "baseline", "--device", "cpu",
                               "--name", "r", *args])


def one_line_error(result, *words):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.output.strip().count("\n") == 0, result.output
    for word in words:
        assert word in result.output, result.output


def pixels(value):
    def change(handle):
        images = handle["images"][...]
        images[1, 0, 2, 3] = value
        handle["images"][...] = images
    return change


@pytest.mark.parametrize("value", [np.nan, np.inf, 7.0, -0.5])
@pytest.mark.parametrize("keep_mtime", [False, True])
def test_pixels_outside_0_1_are_refused(ws, value, keep_mtime):
    edit(ws.path_for("adv", SET), pixels(value), keep_mtime=keep_mtime)
    one_line_error(evaluate(ws, "--adv", SET), SET, "pixel")


def test_a_crafted_set_whose_fingerprint_covers_nan_pixels_is_still_refused(ws, tmp_path):
    """The attacker recomputes content_fingerprint and the seal: the read itself checks pixels."""
    path = ws.path_for("adv", SET)
    with h5py.File(path, "r") as handle:
        attrs = {k: handle.attrs[k] for k in handle.attrs if k not in ("format", "complete", "done", "count", "dtype",
                                                                        "content_fingerprint", "rows_digest")}
        images = torch.from_numpy(handle["images"][...].astype(np.float32))
        columns = {k: torch.from_numpy(handle[k][...]) for k in ("labels", "clean_indices", "success", "clean_pred",
                                                                 "adv_pred")}
    images[0, 0, 0, 0] = float("nan")
    path.unlink()
    with AdvSetWriter(path, count=len(images), image_shape=images.shape[1:], dtype="float16", params=attrs) as writer:
        writer.write(0, images, targets=None, **columns)
        writer.finish({})
    one_line_error(evaluate(ws, "--adv", SET), SET, "pixel value nan")


def test_a_set_of_another_image_size_is_refused(ws):
    path = ws.path_for("adv", SET)
    with h5py.File(path, "r") as handle:
        small = handle["images"][:, :, :8, :8]
    edit(path, replace("images", small))
    one_line_error(evaluate(ws, "--adv", SET), "'images'")  # recorded image size 16: the layout is damaged
    edit(path, set_attr("image_size", 8))  # a consistent forgery: size attribute and fingerprint agree
    edit(path, set_attr("content_fingerprint", _recomputed(path)))
    one_line_error(evaluate(ws, "--adv", SET), SET, "shape (3, 8, 8)")  # still not this cache's size


@pytest.mark.parametrize("rows, words", [
    (lambda n: np.zeros(n, np.int64), "twice"),
    (lambda n: np.arange(n) + 1000, "outside"),
    (lambda n: np.arange(n) - 1, "negative"),
])
def test_bad_clean_indices_are_refused(ws, rows, words):
    path = ws.path_for("adv", SET)
    with h5py.File(path, "r") as handle:
        count = handle["clean_indices"].shape[0]
    edit(path, replace("clean_indices", rows(count)))
    one_line_error(evaluate(ws, "--adv", SET))  # the layout check or the fingerprint refuses it
    edit(path, set_attr("content_fingerprint", _recomputed(path)))  # a consistent forgery
    one_line_error(evaluate(ws, "--adv", SET), words)


def test_content_that_no_longer_matches_its_fingerprint_is_refused_not_rekeyed(ws):
    path = ws.path_for("adv", SET)

    def shift(handle):
        images = handle["images"][...]
        images[2] = np.clip(images[2] + np.float16(0.01), 0, 1)
        handle["images"][...] = images
    edit(path, shift)
    one_line_error(evaluate(ws, "--adv", SET), "does not match its recorded fingerprint")


@pytest.mark.parametrize("key, value, words", [
    ("format_version", "one", "'format_version' is 'one'"),
    ("complete", "no", "'complete' is 'no'"),
    ("complete", False, "incomplete"),
    ("count", "many", "'count'"),
    ("eps", np.nan, "'eps'"),
    ("eps", "8/255", "'eps'"),
    ("success_rate", 3.0, "'success_rate'"),
    ("dtype", "float64", "'dtype'"),
    ("done", 1, "'done'"),
    ("clean_fingerprint", 12, "'clean_fingerprint'"),
])
def test_attributes_of_the_wrong_type_are_one_corrupt_line(ws, key, value, words):
    path = ws.path_for("adv", SET)
    edit(path, set_attr(key, value))
    with pytest.raises(CorruptArtefactError, match="") as info:
        read_adv_info(path)
    assert str(path) in str(info.value) and words in str(info.value)
    one_line_error(evaluate(ws, "--adv", SET), words)


def test_one_damaged_set_does_not_break_evaluate_of_the_others(ws):
    edit(ws.path_for("adv", SET), set_attr("format_version", "one"))
    result = evaluate(ws)  # --adv all
    assert result.exit_code == 0, result.output
    assert f"skipped adversarial set '{SET}'" in result.output and "pgd" in result.output
    skipped: list[str] = []
    assert SET not in [s.name for s in find_adv_sets(ws, skipped=skipped)] and SET in skipped[0]


@pytest.mark.parametrize("damage, words", [
    (lambda h: (h.__delitem__("labels"), h.create_group("labels")), "'labels' is a group"),
    (lambda h: h.__delitem__("clean_indices"), "lacks the dataset 'clean_indices'"),
    (lambda h: (h.__delitem__("images"), h.create_dataset("images", shape=(16, 3, 16, 16), dtype=np.float16,
                                                          chunks=(1, 3, 16, 16), compression="gzip")), "compressed"),
    (lambda h: (h.__delitem__("labels"), h.create_dataset("labels", data=np.zeros(16, np.float32))), "'labels'"),
])
def test_a_damaged_layout_is_one_corrupt_line(ws, damage, words):
    edit(ws.path_for("adv", SET), damage)
    one_line_error(evaluate(ws, "--adv", SET), words)


def test_a_huge_declared_shape_is_refused_before_allocating(ws):
    def forge(handle):
        del handle["images"]
        handle.create_dataset("images", shape=(10**9, 3, 16, 16), dtype=np.float16, chunks=(1, 3, 16, 16))
        handle.attrs["count"] = 10**9
    edit(ws.path_for("adv", SET), forge)
    one_line_error(evaluate(ws, "--adv", SET))


def test_train_refuses_a_set_with_an_empty_clean_fingerprint(ws):
    train_set = "fgsm-eps8_255-baseline-train"
    edit(ws.path_for("adv", train_set), set_attr("clean_fingerprint", ""))
    with pytest.raises(MismatchError, match="no recorded fingerprint"):
        resolve_adv_sets(ws, [train_set], split="train", clean_fingerprint="abc", method="adv")


def test_a_set_of_another_cache_is_refused_by_the_training_reader(ws):
    from defendr_cli.core.training.data import BatchSource

    train_set = ws.path_for("adv", "fgsm-eps8_255-baseline-train")
    edit(train_set, set_attr("clean_fingerprint", "0" * 16))
    with pytest.raises(MismatchError, match="not made from this clean cache"):
        BatchSource(ws.path_for("data", "synth"), "train", 8, kind="doubled", adv_paths=[train_set])


def _partial(tmp_path, rows=6, stop=2):
    final = tmp_path / "adv" / "p.h5"
    params = {"name": "p", "attack": "fgsm", "eps": 0.1, "eps_label": "0.1", "eps_space": "pixel", "split": "test",
              "source_model": "m", "source_model_fingerprint": "f", "clean_fingerprint": "c", "seed": 0}
    images = torch.rand(rows, 3, 4, 4)
    with AdvSetWriter(final, count=rows, image_shape=(3, 4, 4), dtype="float16", params=params) as writer:
        ids = torch.arange(stop)
        writer.write(0, images[:stop], labels=ids % 2, clean_indices=ids, success=ids > 0, clean_pred=ids % 2,
                     adv_pred=ids % 2, targets=None)
    return final, params


def test_resume_refuses_a_partial_file_whose_done_was_raised(tmp_path):
    final, params = _partial(tmp_path)
    partial = partial_adv_path(final)
    assert verify_partial_adv_set(partial).ok
    edit(partial, set_attr("done", 5))  # rows 2..4 were never written (zeros: black images)
    report = verify_partial_adv_set(partial)
    assert not report.ok and "do not match the digest" in report.problem
    with pytest.raises(CorruptArtefactError, match="do not match the digest"):
        AdvSetWriter(final, count=6, image_shape=(3, 4, 4), dtype="float16", params=params, resume=True)
    edit(partial, set_attr("done", "5"))
    with pytest.raises(CorruptArtefactError, match="'done' is '5'"):
        AdvSetWriter(final, count=6, image_shape=(3, 4, 4), dtype="float16", params=params, resume=True)


def test_resume_refuses_edited_rows_of_a_partial_file(tmp_path):
    final, params = _partial(tmp_path)
    edit(partial_adv_path(final), pixels(0.25))
    with pytest.raises(CorruptArtefactError, match="do not match the digest"):
        AdvSetWriter(final, count=6, image_shape=(3, 4, 4), dtype="float16", params=params, resume=True)


def test_info_verify_catches_a_raised_done(ws):
    partial = partial_adv_path(ws.path_for("adv", "x"))
    _, params = _partial(ws.root, rows=6, stop=2)
    shutil.move(partial_adv_path(ws.root / "adv" / "p.h5"), partial)
    edit(partial, set_attr("done", 4))
    result = runner.invoke(app, ["--workdir", str(ws.root), "info", "--verify"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "do not match the digest" in result.output.strip().splitlines()[-1]


def test_info_verify_reports_nan_pixels_in_a_set_whose_fingerprint_matches(ws):
    path = ws.path_for("adv", SET)
    edit(path, pixels(np.nan))
    edit(path, set_attr("content_fingerprint", _recomputed(path)))
    result = runner.invoke(app, ["--workdir", str(ws.root), "info", "--verify", "--json"])
    assert result.exit_code == 1 and "pixel value nan" in result.output


def _recomputed(path):
    from defendr_cli.core.io.adv_fingerprint import compute_adv_fingerprint
    return compute_adv_fingerprint(path)


def test_a_reader_refuses_a_file_replaced_after_it_was_checked(ws):
    path = ws.path_for("adv", SET)
    reader = AdvSetReader(path)
    reader._file.close()  # as a DataLoader worker would, it must reopen the file
    other = ws.path_for("adv", "pgd-eps16_255-s2-baseline-test")
    os.replace(other, path)
    with pytest.raises(CorruptArtefactError, match="changed since it was checked"):
        reader.read([0])


def test_a_sound_set_still_reads_and_evaluates(ws):
    result = evaluate(ws, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output[result.output.index("{"):])
    assert {s["name"] for s in payload["transfer"]["adv_sets"]} == {SET, "pgd-eps16_255-s2-baseline-test"}


def test_bit_flips_anywhere_give_a_set_or_one_corrupt_error(sound, tmp_path):
    """Seeded fuzz: one byte flipped at 150 places (the metadata at the start of the file and
    random places) of a set and of the clean cache: each read either works or raises a Defendr
    error; never a raw h5py RuntimeError/OSError (a flip in an attribute heap used to give one)."""
    from defendr_cli.core.errors import DefendrError
    from defendr_cli.core.io.reader import SplitReader

    def read_set(path):
        with AdvSetReader(path) as reader:
            reader.read(np.arange(len(reader)))

    def read_cache(path):
        with SplitReader(path, "test") as reader:
            reader.read(np.arange(len(reader)))

    for source, read in ((sound.path_for("adv", SET), read_set), (sound.path_for("data", "synth"), read_cache)):
        data = source.read_bytes()
        rng = np.random.default_rng(0)
        places = sorted(set(range(0, 2048, 41)) | set(rng.integers(0, len(data), 100).tolist()))
        for place in places:
            flipped = bytearray(data)
            flipped[place] ^= 0xFF
            target = tmp_path / source.name
            target.write_bytes(bytes(flipped))
            try:
                read(target)
            except DefendrError:
                pass


@pytest.mark.parametrize("value", [np.nan, 7.0])
def test_training_refuses_a_set_with_bad_pixels(ws, value):
    from defendr_cli.core.training.data import BatchSource

    train_set = ws.path_for("adv", "fgsm-eps8_255-baseline-train")
    edit(train_set, pixels(value), keep_mtime=True)
    with pytest.raises(CorruptArtefactError, match="pixel value"):
        source = BatchSource(ws.path_for("data", "synth"), "train", 8, kind="doubled", adv_paths=[train_set])
        for _ in source.epoch(seed=0, epoch=0):
            pass
