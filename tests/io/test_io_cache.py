"""Clean cache: round trip, attributes, fingerprint, atomic writes and refusal to overwrite."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from defendr_cli.core.atomic import partial_path
from defendr_cli.core.io.cache import FORMAT_NAME, CacheWriter
from defendr_cli.core.io.reader import SplitReader, read_cache_info
from defendr_cli.core.io.verify import verify_cache
from defendr_cli.core.errors import ArtefactExistsError, CorruptArtefactError, InputError

COUNTS = {"train": 6, "val": 2, "test": 3}


def _rows(n, size=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8), rng.integers(0, 2, n)


def _write(path, *, force=False, stop_after=None):
    data = {s: _rows(n, seed=i) for i, (s, n) in enumerate(COUNTS.items())}
    with CacheWriter(path, image_size=8, resize="stretch", class_ids=["n01", "n02"], class_names=["cat", "dog"],
                     split_counts=COUNTS, seed=5, source="unit test", source_kind="test", force=force) as w:
        for split, (images, labels) in data.items():
            if stop_after == split:
                raise KeyboardInterrupt
            w.append(split, images[:2], labels[:2], [f"{split}/{i}" for i in range(2)])
            w.append(split, images[2:], labels[2:], [f"{split}/{i}" for i in range(2, len(labels))])
    return data


def test_round_trip_rows_labels_ids_and_attributes(tmp_path):
    path = tmp_path / "c.h5"
    data = _write(path)
    info = read_cache_info(path)
    assert info.split_counts == COUNTS and info.num_classes == 2 and info.class_names == ["cat", "dog"]
    assert info.image_size == 8 and info.resize == "stretch" and info.seed == 5 and info.source == "unit test"
    assert len(info.fingerprint) == 16 and info.summary.startswith("clean cache: test, 2 classes")
    for split, (images, labels) in data.items():
        with SplitReader(path, split) as reader:
            assert len(reader) == COUNTS[split]
            np.testing.assert_array_equal(reader.read_uint8(np.arange(len(reader))), images)
            np.testing.assert_array_equal(reader.labels, labels)
            assert reader.source_ids[-1] == f"{split}/{COUNTS[split] - 1}"
    with h5py.File(path) as f:
        assert f.attrs["format"] == FORMAT_NAME
        assert f["train/images"].chunks is None and f["train/images"].compression is None
        assert f["train/labels"].dtype == np.int64


def test_fingerprint_depends_on_content_and_verify_detects_tampering(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    _write(a)
    _write(b)
    assert read_cache_info(a).fingerprint == read_cache_info(b).fingerprint
    assert verify_cache(a).ok
    with h5py.File(b, "r+") as f:
        f["val/images"][0, 0, 0, 0] ^= 1
    report = verify_cache(b)
    assert not report.ok and report.computed != report.recorded


def test_existing_file_is_refused_without_force_and_replaced_with_it(tmp_path):
    path = tmp_path / "c.h5"
    _write(path)
    before = path.stat().st_mtime_ns
    with pytest.raises(ArtefactExistsError):
        _write(path)
    assert path.stat().st_mtime_ns == before
    _write(path, force=True)
    assert read_cache_info(path).split_counts == COUNTS


def test_interrupted_write_leaves_no_file(tmp_path):
    path = tmp_path / "c.h5"
    with pytest.raises(KeyboardInterrupt):
        _write(path, stop_after="test")
    assert not path.exists() and not partial_path(path).exists()
    assert list(tmp_path.iterdir()) == []


def test_interrupted_force_rewrite_keeps_the_old_cache(tmp_path):
    path = tmp_path / "c.h5"
    _write(path)
    fingerprint = read_cache_info(path).fingerprint
    with pytest.raises(KeyboardInterrupt):
        _write(path, force=True, stop_after="val")
    assert read_cache_info(path).fingerprint == fingerprint


def test_missing_rows_are_an_error_and_no_file(tmp_path):
    path = tmp_path / "c.h5"
    with pytest.raises(InputError, match="incomplete"):
        with CacheWriter(path, image_size=8, resize="stretch", class_ids=["a"], class_names=["a"],
                         split_counts={"train": 2, "val": 0, "test": 0}, seed=0, source="x", source_kind="t") as w:
            w.append("train", _rows(1)[0], np.zeros(1, dtype=np.int64), ["x"])
    assert not path.exists()


def test_bad_rows_are_rejected(tmp_path):
    with pytest.raises(InputError):
        with CacheWriter(tmp_path / "c.h5", image_size=8, resize="stretch", class_ids=["a"], class_names=["a"],
                         split_counts={"train": 1}, seed=0, source="x", source_kind="t") as w:
            w.append("train", np.zeros((1, 3, 9, 9), np.uint8), [0], ["x"])
    assert not (tmp_path / "c.h5").exists()


def test_half_written_and_foreign_files_are_corrupt(tmp_path):
    partial = tmp_path / "partial.h5"
    with h5py.File(partial, "w") as f:  # what an interrupted writer's temp file looks like
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = 1
        f.attrs["complete"] = False
    with pytest.raises(CorruptArtefactError, match="incomplete"):
        read_cache_info(partial)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(CorruptArtefactError, match="not a Defendr clean cache"):
        read_cache_info(foreign)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5 at all")
    with pytest.raises(CorruptArtefactError):
        SplitReader(garbage, "train")
