"""Training batches read the same bytes, in the same order, whether a split is loaded or streamed."""

from __future__ import annotations

import torch

import defendr_cli.core.io.reader as reader_module
from defendr_cli.core.training.data import BatchSource


def _epoch(path, monkeypatch, limit):
    monkeypatch.setattr(reader_module, "IN_MEMORY_BYTES", limit)
    source = BatchSource(path, "train", 16, shuffle=True)
    try:
        mode = source.readers.get()[0].backing_mode
        return mode, [(b.images.clone(), b.labels.clone()) for b in source.epoch(seed=3, epoch=1)]
    finally:
        source.close()


def test_a_streamed_split_gives_bit_identical_batches(synthetic_cache, monkeypatch):
    loaded_mode, loaded = _epoch(synthetic_cache, monkeypatch, 1 << 40)
    streamed_mode, streamed = _epoch(synthetic_cache, monkeypatch, 1)
    assert (loaded_mode, streamed_mode) == ("memory", "pread")
    assert len(loaded) == len(streamed) > 1
    for (a, y), (b, z) in zip(loaded, streamed):
        assert torch.equal(a, b) and torch.equal(y, z)
