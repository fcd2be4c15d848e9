"""Files that lie are clear one-line errors when opened, never a crash deep in torch, and nothing
from a user's file is ever unpickled: the exact inputs of the hostile trial, made small."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from defendr_cli.cli.app import app
from defendr_cli.core.errors import CorruptArtefactError
from defendr_cli.core.io.checkpoint import read_checkpoint
from defendr_cli.core.io.reader import SplitReader, read_cache_info
from tests.attacks.attack_helpers import make_cache, make_checkpoint


def rewrite(path: Path, key: str, data: np.ndarray) -> None:
    with h5py.File(path, "r+") as handle:
        del handle[key]
        handle.create_dataset(key, data=data)


@pytest.fixture
def cache(workspace) -> Path:
    return make_cache(workspace)


def test_images_stored_channels_last_are_refused_on_open(cache):
    with h5py.File(cache, "r") as handle:
        images = handle["test/images"][...]
    rewrite(cache, "test/images", np.ascontiguousarray(images.transpose(0, 2, 3, 1)))  # (N, H, W, 3)
    with pytest.raises(CorruptArtefactError) as info:
        read_cache_info(cache)
    message = str(info.value)
    assert str(cache) in message and "'test/images'" in message and "(N, 3, H, W)" in message


def test_evaluate_on_a_channels_last_cache_is_one_line(workspace, cache):
    make_checkpoint(workspace)
    with h5py.File(cache, "r") as handle:
        images = handle["test/images"][...]
    rewrite(cache, "test/images", np.ascontiguousarray(images.transpose(0, 2, 3, 1)))
    result = CliRunner().invoke(app, ["--workdir", str(workspace.root), "evaluate", "--models", "baseline"])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "expected uint8" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("labels, why", [
    (lambda n, k: np.full(n, -1), "negative label"),
    (lambda n, k: np.full(n, k), "label equal to the class count"),
])
def test_labels_outside_the_classes_are_refused(cache, labels, why):
    info = read_cache_info(cache)
    rewrite(cache, "test/labels", labels(info.split_counts["test"], info.num_classes).astype(np.int64))
    with pytest.raises(CorruptArtefactError, match="outside 0..") :
        SplitReader(cache, "test")


def test_attributes_that_lie_are_refused(cache):
    with h5py.File(cache, "r+") as handle:
        handle.attrs["image_size"] = 64  # the images are smaller
    with pytest.raises(CorruptArtefactError, match="expected uint8"):
        read_cache_info(cache)
    with h5py.File(cache, "r+") as handle:
        handle.attrs["image_size"] = float("nan")
    with pytest.raises(CorruptArtefactError):
        read_cache_info(cache)


def test_a_checkpoint_whose_pickle_runs_code_is_refused_and_the_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.write_text, (marker, "ran"))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"format": "defendr-checkpoint", "payload": Evil()}))
    with pytest.raises(CorruptArtefactError) as info:
        read_checkpoint(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert not marker.exists()
