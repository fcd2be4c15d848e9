"""SplitReader / CacheDataset: random batches come back right from every backing and in workers."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import torch

from defendr_cli.core.io.h5 import sorted_runs
from defendr_cli.core.io.reader import CacheDataset, SplitReader
from defendr_cli.core.errors import InputError


def _reference(path, split):
    with h5py.File(path) as f:
        return f[split]["images"][...], f[split]["labels"][...]


def _chunked_copy(src, dst):
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        images = f["train/images"][...]
        del f["train/images"]
        f["train"].create_dataset("images", data=images, chunks=(7, 3, 32, 32))
    return dst


def test_sorted_runs():
    assert sorted_runs(np.array([1, 2, 3, 7, 9, 10])) == [(1, 4), (7, 8), (9, 11)]
    assert sorted_runs(np.array([], dtype=np.int64)) == []


@pytest.mark.parametrize("mode", ["memory", "pread", "hdf5"])
def test_random_batches_match_the_stored_rows(synthetic_cache, tmp_path, mode):
    path = _chunked_copy(synthetic_cache, tmp_path / "chunked.h5") if mode == "hdf5" else synthetic_cache
    images, labels = _reference(path, "train")
    rng = np.random.default_rng(1)
    with SplitReader(path, "train", in_memory=(mode == "memory")) as reader:
        assert reader.backing_mode == mode
        for _ in range(5):
            idx = rng.integers(0, len(reader), 37)  # unsorted, with duplicates
            np.testing.assert_array_equal(reader.read_uint8(idx), images[idx])
            out = reader.read(torch.from_numpy(idx))
            assert out.dtype == torch.float32 and out.shape == (37, 3, 32, 32)
            assert 0.0 <= out.min() and out.max() <= 1.0
            torch.testing.assert_close(out, torch.from_numpy(images[idx]).float() / 255)
            np.testing.assert_array_equal(reader.read_labels(idx).numpy(), labels[idx])
        assert reader.read_uint8([]).shape == (0, 3, 32, 32)


def test_iter_batches_shuffled_covers_every_row_once_and_is_seeded(synthetic_cache):
    with SplitReader(synthetic_cache, "val") as reader:
        batches = list(reader.iter_batches(16, shuffle=True, seed=3))
        seen = torch.cat([b.indices for b in batches])
        assert sorted(seen.tolist()) == list(range(len(reader)))
        assert seen.tolist() != list(range(len(reader)))
        again = torch.cat([b.indices for b in reader.iter_batches(16, shuffle=True, seed=3)])
        assert torch.equal(seen, again)
        for b in batches:
            torch.testing.assert_close(b.images, reader.read(b.indices))
            assert torch.equal(b.labels, torch.from_numpy(reader.labels[b.indices.numpy()]))
        assert len(list(reader.iter_batches(16, drop_last=True))) == len(reader) // 16
        subset = list(reader.iter_batches(4, indices=[5, 1, 2]))
        assert [b.indices.tolist() for b in subset] == [[5, 1, 2]]


def test_out_of_range_and_bad_split(synthetic_cache):
    with SplitReader(synthetic_cache, "test") as reader:
        with pytest.raises(InputError):
            reader.read([len(reader)])
    with pytest.raises(InputError):
        SplitReader(synthetic_cache, "holdout")


@pytest.mark.parametrize("mode", ["pread", "hdf5"])
def test_dataloader_with_forked_workers_reads_the_same_rows(synthetic_cache, tmp_path, mode):
    path = synthetic_cache
    if mode == "hdf5":  # chunked copy of the test split: rows are read through h5py in the workers
        path = tmp_path / "chunked.h5"
        shutil.copyfile(synthetic_cache, path)
        with h5py.File(path, "r+") as f:
            images = f["test/images"][...]
            del f["test/images"]
            f["test"].create_dataset("images", data=images, chunks=(5, 3, 32, 32))
    dataset = CacheDataset(path, "test", in_memory=False)
    dataset.reader.read([0])  # open in the parent first: workers must reopen, not reuse the handle
    assert dataset.reader.backing_mode == mode
    loader = torch.utils.data.DataLoader(dataset, batch_size=25, num_workers=2,
                                         multiprocessing_context="fork")
    images = torch.cat([x for x, _ in loader])
    labels = torch.cat([y for _, y in loader])
    ref_images, ref_labels = _reference(synthetic_cache, "test")
    torch.testing.assert_close(images, torch.from_numpy(ref_images).float() / 255)
    assert torch.equal(labels, torch.from_numpy(ref_labels))
    image, label = dataset[3]
    assert image.shape == (3, 32, 32) and int(label) == int(ref_labels[3])


def test_read_into_a_reused_buffer(synthetic_cache):
    with SplitReader(synthetic_cache, "val") as reader:
        buffer = torch.empty((10, 3, 32, 32))
        out = reader.read([4, 2, 9], out=buffer)
        assert out.data_ptr() == buffer.data_ptr() and out.shape == (3, 3, 32, 32)
        torch.testing.assert_close(out, reader.read([4, 2, 9]), rtol=0, atol=0)
        with pytest.raises(InputError):
            reader.read(list(range(11)), out=buffer)


def test_a_split_whose_images_are_missing_is_a_corrupt_artefact(tmp_path, synthetic_cache):
    from defendr_cli.core.errors import CorruptArtefactError

    damaged = tmp_path / "damaged.h5"
    shutil.copy(synthetic_cache, damaged)
    with h5py.File(damaged, "r+") as handle:
        del handle["test"]["images"]
    with pytest.raises(CorruptArtefactError):
        with SplitReader(damaged, "test", in_memory=True) as reader:
            reader.read_uint8([0])


def test_a_split_above_the_in_memory_limit_streams_without_mapping_the_file(synthetic_cache, monkeypatch):
    """Resident memory must not grow with the split: the default backing of a large split reads
    with pread (page cache only), never a memmap whose touched pages count as the process's."""
    import defendr_cli.core.io.reader as reader_module

    monkeypatch.setattr(reader_module, "IN_MEMORY_BYTES", 1)
    images, _ = _reference(synthetic_cache, "train")
    with SplitReader(synthetic_cache, "train") as reader:
        assert reader.backing_mode == "pread"
        for batch in reader.iter_batches(16, shuffle=True, seed=0):
            np.testing.assert_array_equal((batch.images * 255).round().to(torch.uint8).numpy(),
                                          images[batch.indices.numpy()])
        try:
            maps = open("/proc/self/maps").read()
        except OSError:
            pytest.skip("no /proc/self/maps on this system")
        assert str(synthetic_cache) not in maps and synthetic_cache.name not in maps


def test_a_truncated_contiguous_cache_is_a_corrupt_artefact_when_streamed(tmp_path, synthetic_cache):
    from defendr_cli.core.errors import CorruptArtefactError

    truncated = tmp_path / "truncated.h5"
    shutil.copy(synthetic_cache, truncated)
    with SplitReader(truncated, "train", in_memory=False) as reader:
        size = truncated.stat().st_size
        with open(truncated, "r+b") as handle:
            handle.truncate(reader._open().offset + 3 * 32 * 32 * 3 // 2)
        with pytest.raises(CorruptArtefactError):
            reader.read_uint8([len(reader) - 1])
    assert size > truncated.stat().st_size
