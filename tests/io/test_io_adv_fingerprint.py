"""Adversarial-set content fingerprints: recorded while writing, trusted after a cheap check, and
a set whose content no longer hashes to its record is refused (never re-keyed and used)."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import torch

from defendr_cli.core.evaluation.transfer.inputs import set_key_for_adv
from defendr_cli.core.fingerprint import file_fingerprint
from defendr_cli.core.io import adv_fingerprint
from defendr_cli.core.io.adv_fingerprint import (
    adv_set_fingerprint,
    compute_adv_fingerprint,
    sampled_rows,
    seal_path,
)
from defendr_cli.core.errors import CorruptArtefactError
from defendr_cli.core.io.adversarial import AdvSetReader, AdvSetWriter, read_adv_info
from defendr_cli.core.io.verify import verify_adv_set

PARAMS = {"name": "x", "attack": "fgsm", "eps": 0.1, "eps_label": "0.1", "eps_space": "pixel", "split": "test",
          "source_model": "m", "source_model_fingerprint": "f" * 16, "clean_fingerprint": "c" * 16, "seed": 0}
ROWS = 20


def _write(path, images, *, stop_after=None, resume=False):
    n = images.shape[0]
    with AdvSetWriter(path, count=n, image_shape=images.shape[1:], dtype="float16", params=PARAMS,
                      resume=resume) as writer:
        for start in range(writer.done, n, 3):
            if stop_after is not None and start >= stop_after:
                return
            rows = torch.arange(start, min(n, start + 3))
            writer.write(start, images[rows], labels=rows % 3, clean_indices=rows, success=rows % 2 == 0,
                         clean_pred=rows % 3, adv_pred=(rows + 1) % 3, targets=None)
        writer.finish({"success_rate": 0.5, "summary": "test set"})


@pytest.fixture
def adv_set(tmp_path):
    path = tmp_path / "adv" / "x.h5"
    _write(path, torch.rand(ROWS, 3, 4, 4))
    adv_fingerprint._VERIFIED.clear()
    return path


@pytest.fixture
def no_full_read(monkeypatch):
    """Any full re-hash of a set (content or file bytes) fails the test."""
    def fail(*args, **kwargs):
        raise AssertionError("the whole set was re-read")

    monkeypatch.setattr(adv_fingerprint, "_rehash", fail)
    monkeypatch.setattr(adv_fingerprint, "file_fingerprint", fail)


def _edit_row(path, row):
    with h5py.File(path, "r+") as handle:
        values = handle["images"][row]
        values.flat[0] = values.flat[0] + np.float16(0.25)
        handle["images"][row] = values


def test_writer_records_the_content_fingerprint_and_seals_the_file(adv_set):
    info = read_adv_info(adv_set)
    assert info.content_fingerprint == compute_adv_fingerprint(adv_set)
    assert seal_path(adv_set).is_file()
    report = verify_adv_set(adv_set)
    assert report.ok and report.rows == ROWS


def test_unchanged_set_is_not_read_in_full(adv_set, no_full_read):
    recorded = read_adv_info(adv_set).content_fingerprint
    assert adv_set_fingerprint(adv_set) == recorded
    assert set_key_for_adv(adv_set, read_adv_info(adv_set)).endswith(recorded)


def test_edited_sampled_row_is_refused_even_with_the_old_mtime(adv_set):
    adv_set_fingerprint(adv_set)
    stat = adv_set.stat()
    _edit_row(adv_set, 0)  # row 0 is always sampled
    os.utime(adv_set, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # hide the edit from the mtime check
    with pytest.raises(CorruptArtefactError, match="does not match its recorded fingerprint"):
        adv_set_fingerprint(adv_set)  # re-hashed, found different: refused, not used under a new key
    with pytest.raises(CorruptArtefactError, match="does not match its recorded fingerprint"):
        AdvSetReader(adv_set)
    assert not verify_adv_set(adv_set).ok


def test_edited_unsampled_row_is_refused_after_its_mtime_changed(adv_set):
    row = next(r for r in range(ROWS) if r not in set(sampled_rows(ROWS).tolist()))
    adv_set_fingerprint(adv_set)
    stat = adv_set.stat()
    _edit_row(adv_set, row)
    os.utime(adv_set, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a later edit
    with pytest.raises(CorruptArtefactError, match="does not match"):
        adv_set_fingerprint(adv_set)


def test_touched_but_unchanged_set_is_rehashed_once_then_resealed(adv_set, monkeypatch):
    recorded = adv_set_fingerprint(adv_set)
    stat = adv_set.stat()
    os.utime(adv_set, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # e.g. copied without -p
    assert adv_set_fingerprint(adv_set) == recorded  # re-hashed in full, same content: seal renewed
    monkeypatch.setattr(adv_fingerprint, "_rehash", lambda *a: (_ for _ in ()).throw(AssertionError("re-read")))
    assert adv_set_fingerprint(adv_set) == recorded


def test_missing_seal_costs_one_full_hash(adv_set):
    recorded = read_adv_info(adv_set).content_fingerprint
    seal_path(adv_set).unlink()
    assert adv_set_fingerprint(adv_set) == recorded and seal_path(adv_set).is_file()


def test_resumed_write_gives_the_same_fingerprint(tmp_path):
    images = torch.rand(ROWS, 3, 4, 4)
    whole, resumed = tmp_path / "a" / "x.h5", tmp_path / "b" / "x.h5"
    _write(whole, images)
    _write(resumed, images, stop_after=9)
    _write(resumed, images, resume=True)
    assert read_adv_info(resumed).content_fingerprint == read_adv_info(whole).content_fingerprint


def test_set_without_the_attribute_falls_back_to_the_file_hash(adv_set):
    with h5py.File(adv_set, "r+") as handle:
        del handle.attrs["content_fingerprint"]
    assert adv_set_fingerprint(adv_set) == file_fingerprint(adv_set)
