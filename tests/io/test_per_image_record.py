"""The per-image record: round trip, resume after an interruption, corrupt files refused, robust
accuracy recomputed from the rows, CSV export."""

from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest

from defendr_cli.core.errors import ArtefactExistsError, CorruptArtefactError, InputError, MismatchError
from defendr_cli.core.io.per_image_record import (
    COLUMN_NAMES,
    PerImageRecordWriter,
    RecordHeader,
    load_per_image_record,
    merge_records,
    partial_record_path,
    robust_accuracy_from_record,
    robust_by_image,
    to_csv,
)

HEADER = RecordHeader(suite="standard", budgets={"apgd-ce": {"steps": 100}, "square": {"n_queries": 5000}},
                      eps=8 / 255, seed=0, model_fingerprint="abc123", extra={"draws": 2})
ATTACKS = ("apgd-ce", "square")


def rows_for(images, draws=2):
    """Rows of `images` for both attacks and `draws` draws: image i is misclassified before when
    i % 5 == 0, broken by square in draw 1 when i % 3 == 0, else robust."""
    out = {name: [] for name in COLUMN_NAMES}
    for i in images:
        for draw in range(draws):
            for attack in ATTACKS:
                broken = attack == "square" and draw == 1 and i % 3 == 0 and i % 5 != 0
                values = {"image": i, "source_id": f"img-{i}-é", "label": i % 4, "draw": draw, "attack": attack,
                          "restart": 0 if broken else -1, "correct_before": i % 5 != 0, "broken": broken,
                          "broken_by": attack if broken else "", "iteration": 17 if broken else -1,
                          "margin": -0.25 if broken else 1.0 + i / 7, "linf": 8 / 255 if broken else 0.0,
                          "l2": 0.1 * i, "forward_passes": 103 + i, "backward_passes": 101}
                for name in COLUMN_NAMES:
                    out[name].append(values[name])
    return out


def expected_robust(images):
    return np.array([i % 5 != 0 and not (i % 3 == 0) for i in images])


def test_round_trip(tmp_path):
    final = tmp_path / "per_image.h5"
    with PerImageRecordWriter(final, HEADER) as writer:
        writer.append(rows_for(range(0, 6)))
        writer.append(rows_for(range(6, 10)))
        writer.finalize()
    assert final.exists() and not partial_record_path(final).exists()
    record = load_per_image_record(final)
    assert record.complete and len(record) == 10 * 2 * 2
    assert record.header.matches(HEADER) and record.header.budgets == HEADER.budgets
    expected = rows_for(range(10))
    for name in COLUMN_NAMES:
        got = record.columns[name].tolist()
        assert got == (pytest.approx(expected[name]) if record.columns[name].dtype.kind == "f" else expected[name]), name
    assert record.columns["margin"].dtype == np.float32 and record.columns["correct_before"].dtype == bool
    with h5py.File(final) as handle:  # contiguous datasets, fixed-width UTF-8 strings
        assert handle["image"].chunks is None and handle["source_id"].dtype == np.dtype("S128")
        assert handle["source_id"].id.get_type().get_cset() == h5py.h5t.CSET_UTF8


def test_per_channel_eps_and_existing_record_needs_force(tmp_path):
    final = tmp_path / "per_image.h5"
    header = RecordHeader("standard", {}, [0.01, 0.02, 0.03], 1, "f")
    with PerImageRecordWriter(final, header) as writer:
        writer.finalize()
    assert load_per_image_record(final).header.eps == [0.01, 0.02, 0.03]
    with pytest.raises(ArtefactExistsError):
        PerImageRecordWriter(final, header)
    PerImageRecordWriter(final, header, force=True).close()


def test_resume_reports_finished_images_and_ends_like_an_uninterrupted_run(tmp_path):
    final, straight = tmp_path / "per_image.h5", tmp_path / "straight.h5"
    with PerImageRecordWriter(straight, HEADER) as writer:
        writer.append(rows_for(range(0, 4)))
        writer.append(rows_for(range(4, 8)))
        writer.finalize()
    with PerImageRecordWriter(final, HEADER) as writer:  # interrupted after the first batch
        writer.append(rows_for(range(0, 4)))
    assert not final.exists() and partial_record_path(final).exists()
    with pytest.raises(CorruptArtefactError):
        load_per_image_record(final.with_name(partial_record_path(final).name))  # incomplete refused
    with PerImageRecordWriter(final, HEADER) as writer:
        assert writer.finished.tolist() == [0, 1, 2, 3]
        with pytest.raises(MismatchError):
            writer.append(rows_for([3]))  # an image twice
        writer.append(rows_for(range(4, 8)))
        writer.finalize()
    ours, theirs = load_per_image_record(final), load_per_image_record(straight)
    for name in COLUMN_NAMES:
        assert np.array_equal(ours.columns[name], theirs.columns[name])


def test_rows_of_an_interrupted_append_are_dropped(tmp_path):
    final = tmp_path / "per_image.h5"
    with PerImageRecordWriter(final, HEADER) as writer:
        writer.append(rows_for([0, 1]))
    with h5py.File(partial_record_path(final), "r+") as handle:  # an append that died before its commit
        for name in COLUMN_NAMES:
            handle[name].resize((handle[name].shape[0] + 3,))
    with PerImageRecordWriter(final, HEADER) as writer:
        assert writer.finished.tolist() == [0, 1] and writer.rows == 8
        writer.append(rows_for([2]))
        writer.finalize()
    assert load_per_image_record(final).columns["image"].tolist() == [0] * 4 + [1] * 4 + [2] * 4


def test_resume_with_another_header_is_refused(tmp_path):
    final = tmp_path / "per_image.h5"
    with PerImageRecordWriter(final, HEADER) as writer:
        writer.append(rows_for([0]))
    other = RecordHeader("standard", HEADER.budgets, 4 / 255, 0, "abc123", {"draws": 2})
    with pytest.raises(MismatchError):
        PerImageRecordWriter(final, other)
    with PerImageRecordWriter(final, other, fresh=True) as writer:
        assert writer.finished.size == 0


def test_bad_rows_refused(tmp_path):
    with PerImageRecordWriter(tmp_path / "r.h5", HEADER) as writer:
        rows = rows_for([0])
        with pytest.raises(InputError):
            writer.append({k: v for k, v in rows.items() if k != "margin"})
        with pytest.raises(InputError):
            writer.append({**rows, "source_id": ["x" * 200] * 4})
        with pytest.raises(InputError):
            writer.append({**rows, "label": [0]})


def _finished_record(path):
    with PerImageRecordWriter(path, HEADER) as writer:
        writer.append(rows_for(range(5)))
        writer.finalize()
    return path


@pytest.mark.parametrize("damage", ["not_hdf5", "format", "version", "missing_column", "dtype", "short_column",
                                    "budgets", "negative_count"])
def test_corrupt_files_refused(tmp_path, damage):
    path = _finished_record(tmp_path / "per_image.h5")
    if damage == "not_hdf5":
        path.write_bytes(b"not an hdf5 file at all")
    else:
        with h5py.File(path, "r+") as handle:
            if damage == "format":
                handle.attrs["format"] = "something-else"
            elif damage == "version":
                handle.attrs["format_version"] = 99
            elif damage == "missing_column":
                del handle["l2"]
            elif damage == "dtype":
                del handle["margin"]
                handle["margin"] = np.zeros(20, dtype=np.int64)
            elif damage == "short_column":
                del handle["linf"]
                handle["linf"] = np.zeros(19, dtype=np.float32)
            elif damage == "budgets":
                handle.attrs["budgets"] = "{not json"
            elif damage == "negative_count":
                handle["forward_passes"][3] = -1
    with pytest.raises(CorruptArtefactError):
        load_per_image_record(path)


def test_robust_accuracy_recomputed_from_the_rows(tmp_path):
    record = load_per_image_record(_finished_record(tmp_path / "per_image.h5"))
    images, robust = robust_by_image(record)
    assert images.tolist() == [0, 1, 2, 3, 4]
    assert robust.tolist() == expected_robust(range(5)).tolist() == [False, True, True, False, True]
    assert robust_accuracy_from_record(record) == pytest.approx(3 / 5)
    record.columns["broken"][-1] = True  # broken in one attack of one draw is enough
    assert robust_accuracy_from_record(record) == pytest.approx(2 / 5)


def test_csv_export_loads_back(tmp_path):
    record = load_per_image_record(_finished_record(tmp_path / "per_image.h5"))
    path = to_csv(record, tmp_path / "per_image.csv")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(COLUMN_NAMES) and len(rows) == len(record)
    assert rows[1]["source_id"] == "img-0-é" and rows[1]["correct_before"] == "False"
    assert np.array_equal(np.array([float(r["margin"]) for r in rows], dtype=np.float32), record.columns["margin"])


def test_merged_shards_equal_the_single_record(tmp_path):
    whole = load_per_image_record(_finished_record(tmp_path / "whole.h5"))
    shards = []
    for rank, images in enumerate(([0, 2, 4], [1, 3])):
        with PerImageRecordWriter(tmp_path / f"rank{rank}.h5", HEADER) as writer:
            writer.append(rows_for(images))
            writer.finalize()
        shards.append(load_per_image_record(tmp_path / f"rank{rank}.h5"))
    merged = merge_records(shards)
    for name in COLUMN_NAMES:
        assert np.array_equal(merged.columns[name], whole.columns[name]), name
    with PerImageRecordWriter(tmp_path / "merged.h5", HEADER) as writer:  # decoded columns append as they are
        writer.append(merged.columns)
        writer.finalize()
    assert np.array_equal(load_per_image_record(tmp_path / "merged.h5").columns["source_id"], whole.columns["source_id"])
    with pytest.raises(MismatchError):
        merge_records([shards[0], shards[0]])
