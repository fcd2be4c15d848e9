"""The adversarial-set file: writer/reader round trip, partial files, resume checks, storage rounding."""

from __future__ import annotations

import pytest
import torch

from defendr_cli.core.io.adversarial import (
    AdvSetReader,
    AdvSetWriter,
    from_storage,
    partial_adv_path,
    read_adv_info,
    round_to_storage,
    to_storage,
)
from defendr_cli.core.errors import ArtefactExistsError, CorruptArtefactError, InputError

PARAMS = {"name": "x", "attack": "fgsm", "eps": 0.1, "eps_label": "0.1", "eps_space": "pixel", "split": "test",
          "source_model": "m", "source_model_fingerprint": "f" * 16, "clean_fingerprint": "c" * 16, "seed": 0}


def _write(path, dtype, images, *, stop_after=None, resume=False, params=PARAMS):
    writer = AdvSetWriter(path, count=images.shape[0], image_shape=images.shape[1:], dtype=dtype,
                          params=params, resume=resume)
    n = images.shape[0]
    with writer:
        for start in range(writer.done, n, 2):
            if stop_after is not None and start >= stop_after:
                return writer
            rows = torch.arange(start, min(n, start + 2))
            writer.write(start, images[rows], labels=rows % 3, clean_indices=rows, success=rows % 2 == 0,
                         clean_pred=rows % 3, adv_pred=(rows + 1) % 3, targets=None)
        writer.finish({"success_rate": 0.5, "summary": "test set"})
    return writer


@pytest.mark.parametrize("dtype,tol", [("float16", 1e-3), ("uint8", 0.5 / 255 + 1e-6)])
def test_round_trip_and_reader(tmp_path, dtype, tol):
    images = torch.rand(5, 3, 4, 4)
    path = tmp_path / "adv" / "x.h5"
    _write(path, dtype, images)
    info = read_adv_info(path)
    assert info.dtype == dtype and info.count == 5 and info.success_rate == 0.5 and info.summary == "test set"
    with AdvSetReader(path) as reader:
        assert (reader.read([4, 0, 4]) - images[[4, 0, 4]]).abs().max() <= tol
        batches = list(reader.iter_batches(2))
        assert [b.indices.tolist() for b in batches] == [[0, 1], [2, 3], [4]]
        assert batches[0].images.dtype == torch.float32 and reader.success.tolist() == [True, False, True, False, True]
        assert (reader.targets == -1).all()
        with pytest.raises(InputError):
            reader.read([5])


def test_partial_file_is_not_a_set_and_resumes_only_with_equal_params(tmp_path):
    images = torch.rand(6, 3, 4, 4)
    path = tmp_path / "x.h5"
    _write(path, "float16", images, stop_after=4)
    assert not path.exists() and partial_adv_path(path).exists()
    with pytest.raises(CorruptArtefactError, match="incomplete"):
        read_adv_info(partial_adv_path(path))
    other = AdvSetWriter(path, count=6, image_shape=(3, 4, 4), dtype="float16", params={**PARAMS, "seed": 1},
                         resume=True)
    assert other.done == 0  # different parameters: starts over
    other.close()
    _write(path, "float16", images, stop_after=4)
    writer = _write(path, "float16", images, resume=True)
    assert writer.resumed_from == 4 and path.exists() and not partial_adv_path(path).exists()
    with pytest.raises(ArtefactExistsError):
        AdvSetWriter(path, count=6, image_shape=(3, 4, 4), dtype="float16", params=PARAMS)


@pytest.mark.parametrize("dtype", ["float16", "uint8"])
def test_round_to_storage_equals_a_write_read_round_trip(dtype):
    images = torch.rand(20, 3, 4, 4)
    assert torch.equal(round_to_storage(images, dtype), from_storage(to_storage(images, dtype)))
