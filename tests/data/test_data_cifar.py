"""prepare from CIFAR-10 / CIFAR-100 files written in the real formats; poisoned and damaged files."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from defendr_cli.core.data.cifar_prepare import prepare_cifar
from defendr_cli.core.data.cifar_source import load_pickle_restricted, read_cifar
from defendr_cli.core.errors import InputError, SourceError
from defendr_cli.core.io.reader import SplitReader, read_cache_info

from .cifar_helpers import CIFAR10_NAMES, CIFAR100_NAMES, cifar_images, make_cifar

KINDS = ["cifar10-bin", "cifar10-py", "cifar100-bin", "cifar100-py"]


def _split_rows(path, split):
    with SplitReader(path, split) as reader:
        return reader.read_uint8(np.arange(len(reader))), reader.labels.copy(), list(reader.source_ids)


@pytest.mark.parametrize("kind", KINDS)
def test_each_version_reads_the_exact_images_train_and_test_as_they_come(tmp_path, workspace, kind):
    folder = make_cifar(tmp_path, kind, train_per_class=5, test_per_class=3)
    names = CIFAR10_NAMES if kind.startswith("cifar10-") else CIFAR100_NAMES
    result = prepare_cifar(workspace, tmp_path)  # the parent folder: the CIFAR subfolder is found
    info = read_cache_info(result.path)
    assert info.class_ids == names == info.class_names and info.image_size == 32
    k = len(names)
    assert info.split_counts == {"train": 4 * k, "val": 1 * k, "test": 3 * k}  # val = a tenth of train, >= 1
    assert info.source_kind == kind.split("-")[0] and str(folder.resolve()) in info.source
    train_images, train_labels = cifar_images(k, 5, 1)
    test_images, test_labels = cifar_images(k, 3, 2)
    for split, (images, labels) in {"train": (train_images, train_labels), "val": (train_images, train_labels),
                                    "test": (test_images, test_labels)}.items():
        got, got_labels, ids = _split_rows(result.path, split)
        original = {(int(lab), int(img[1, 0, 0])): img for img, lab in zip(images, labels)}
        for image, label in zip(got, got_labels):  # every row is an original image of its class, unchanged
            assert image[0, 0, 0] == label and np.array_equal(image, original[(int(label), int(image[1, 0, 0]))])
        parts = {sid.split("#")[0] for sid in ids}
        assert parts <= ({"test_batch.bin", "test_batch", "test.bin", "test"} if split == "test"
                         else {f"data_batch_{i}{s}" for i in range(1, 6) for s in ("", ".bin")} | {"train", "train.bin"})
    train_ids = set(_split_rows(result.path, "train")[2])
    assert not train_ids & set(_split_rows(result.path, "val")[2])  # val is carved out of train


def test_binary_and_python_versions_give_the_same_cache(tmp_path, workspace):
    binary = prepare_cifar(workspace, make_cifar(tmp_path / "b", "cifar10-bin"), name="b")
    python = prepare_cifar(workspace, make_cifar(tmp_path / "p", "cifar10-py"), name="p")
    assert binary.info.fingerprint == python.info.fingerprint


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_python_copies_resaved_by_python3_are_read(tmp_path, protocol):
    as_distributed = read_cifar(make_cifar(tmp_path / "a", "cifar100-py"), "cifar100-py")
    resaved = read_cifar(make_cifar(tmp_path / "b", "cifar100-py", python_protocol=protocol), "cifar100-py")
    assert resaved.class_names == as_distributed.class_names
    assert np.array_equal(resaved.train.images, as_distributed.train.images)
    assert np.array_equal(resaved.test.labels, as_distributed.test.labels)


def test_split_classes_size_and_seed(tmp_path, workspace):
    make_cifar(tmp_path, "cifar10-py", train_per_class=6, test_per_class=3)
    result = prepare_cifar(workspace, tmp_path, classes=3, split="3,2,2", image_size=16, seed=4)
    info = read_cache_info(result.path)
    assert result.path.name == "cifar10-c3-n7-16px-seed4.h5"
    assert info.class_ids == CIFAR10_NAMES[:3] and info.split_counts == {"train": 9, "val": 6, "test": 6}
    images, labels, ids = _split_rows(result.path, "val")
    assert images.shape == (6, 3, 16, 16) and labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert all(sid.startswith("data_batch_") for sid in ids)
    other = prepare_cifar(workspace, tmp_path, classes=3, split="3,2,2", image_size=16, seed=5)
    assert other.info.fingerprint != info.fingerprint  # the seed chooses which images go where
    per_class = prepare_cifar(workspace, tmp_path, classes=2, per_class=6)
    assert per_class.info.split_counts["train"] + per_class.info.split_counts["val"] <= 12
    with pytest.raises(SourceError, match="6 training and 3 test images per class"):
        prepare_cifar(workspace, tmp_path, split="5,2,1")
    with pytest.raises(SourceError, match="asks for 5 and 4"):
        prepare_cifar(workspace, tmp_path, split="4,1,4")
    with pytest.raises(InputError, match="at least 2 classes, not 1"):
        prepare_cifar(workspace, tmp_path, classes=1)
    with pytest.raises(InputError, match="has 10 classes"):
        prepare_cifar(workspace, tmp_path, classes=11)


# -- poisoned pickles: refused, and their code never runs ---------------------------------------
class _RunsCode:
    """Unpickling this calls `function(*args)`, which would write the marker file."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def _payloads(marker):
    import subprocess

    return {
        "os.system": _RunsCode(os.system, f"touch {marker}"),
        "subprocess.check_call": _RunsCode(subprocess.check_call, ["touch", str(marker)]),
        "builtins.exec": _RunsCode(exec, f"open({str(marker)!r}, 'w').close()"),
    }


@pytest.mark.parametrize("name", ["os.system", "subprocess.check_call", "builtins.exec"])
@pytest.mark.parametrize("protocol", [2, 4])
def test_a_pickle_that_would_run_code_is_refused(tmp_path, workspace, name, protocol):
    marker = tmp_path / "marker"
    folder = make_cifar(tmp_path / "src", "cifar10-py")
    payload = _payloads(marker)[name]
    batch = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [payload]}  # hidden inside a valid batch
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=protocol))
    with pytest.raises(SourceError) as caught:
        prepare_cifar(workspace, folder)
    message = str(caught.value)
    assert "refused to load" in message and "test_batch" in message and "\n" not in message
    assert name.split(".")[1] in message  # names what it asked for ('posix.system', 'commands.check_call'...)
    assert not marker.exists()  # the code did not run
    assert not workspace.data_dir.exists() or not any(workspace.data_dir.iterdir())
    (folder / "batches.meta").write_bytes(pickle.dumps(payload, protocol=protocol))  # the meta file too
    with pytest.raises(SourceError, match="refused to load"):
        read_cifar(folder, "cifar10-py")
    assert not marker.exists()


def test_the_restricted_unpickler_builds_arrays_and_nothing_else(tmp_path):
    path = tmp_path / "ok"
    path.write_bytes(pickle.dumps({b"data": np.arange(6, dtype=np.uint8).reshape(2, 3), "n": [1, 2.5, "x"]}))
    loaded = load_pickle_restricted(path)
    assert loaded["n"] == [1, 2.5, "x"] and loaded[b"data"].tolist() == [[0, 1, 2], [3, 4, 5]]
    path.write_bytes(pickle.dumps({"when": __import__("datetime").date(2020, 1, 1)}))
    with pytest.raises(SourceError, match="datetime.date"):
        load_pickle_restricted(path)


# -- damaged files ------------------------------------------------------------------------------
def test_damaged_files_are_one_line_source_errors(tmp_path, workspace):
    binary = make_cifar(tmp_path / "b", "cifar10-bin")
    data = (binary / "data_batch_2.bin").read_bytes()
    (binary / "data_batch_2.bin").write_bytes(data[:-100])
    with pytest.raises(SourceError, match="data_batch_2.bin is not a CIFAR-10 binary version file"):
        prepare_cifar(workspace, binary)
    (binary / "data_batch_2.bin").write_bytes(b"\x0b" + data[1:])  # label 11 in a 10-class set
    with pytest.raises(SourceError, match="label 11, outside 0..9"):
        prepare_cifar(workspace, binary)
    (binary / "data_batch_2.bin").write_bytes(data)
    (binary / "batches.meta.txt").write_text("cat\ndog\n")
    with pytest.raises(SourceError, match="must name 10 distinct classes, it names 2"):
        prepare_cifar(workspace, binary)
    (binary / "batches.meta.txt").unlink()
    with pytest.raises(SourceError, match="missing batches.meta.txt"):
        read_cifar(binary, "cifar10-bin")

    python = make_cifar(tmp_path / "p", "cifar10-py")
    whole = (python / "data_batch_1").read_bytes()
    (python / "data_batch_1").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(SourceError, match="data_batch_1 is not a readable CIFAR python file"):
        prepare_cifar(workspace, python)
    (python / "data_batch_1").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}))
    with pytest.raises(SourceError, match="'data' must be a uint8 array"):
        prepare_cifar(workspace, python)
    (python / "data_batch_1").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}))
    with pytest.raises(SourceError, match="'labels' must be a list of 2 integer labels"):
        prepare_cifar(workspace, python)
    (python / "data_batch_1").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(SourceError, match="holds a list, not a dict"):
        prepare_cifar(workspace, python)
