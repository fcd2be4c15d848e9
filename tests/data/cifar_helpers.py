"""Writes tiny CIFAR-10 / CIFAR-100 folders in the real file formats (binary and python versions).

The python version is written the way the distributed files were: Python 2 pickles at protocol 2,
where byte strings are BINSTRING opcodes (a Python 3 pickler would write _codecs.encode calls).
"""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import numpy as np

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR100_NAMES = [f"fine{i:02d}" for i in range(100)]
CIFAR100_COARSE = [f"coarse{i:02d}" for i in range(20)]


class Py2Pickler(pickle._Pickler):  # the pure-python pickler, so that one opcode can be overridden
    """Writes bytes as Python 2 strings (SHORT_BINSTRING / BINSTRING), as the CIFAR files hold them."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def py2_pickle(obj: object) -> bytes:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    # the distributed files name numpy 1's module path (GLOBAL opcodes are newline-ended text)
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def cifar_images(num_classes: int, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (n, 3, 32, 32) images and labels (n,), classes interleaved; image i of class c has
    pixel [0, 0, 0] = c and [1, 0, 0] = i so tests can tell which image went where."""
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(num_classes), per_class)
    images = rng.integers(0, 256, size=(len(labels), 3, 32, 32), dtype=np.uint8)
    images[:, 0, 0, 0] = labels
    images[:, 1, 0, 0] = np.repeat(np.arange(per_class), num_classes)
    return images, labels.astype(np.int64)


def _chunks(n: int, parts: int) -> list[slice]:
    edges = np.linspace(0, n, parts + 1).astype(int)
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def make_cifar(root: Path, kind: str, *, train_per_class: int = 5, test_per_class: int = 3,
               python_protocol: int | None = None) -> Path:
    """Write `kind` ('cifar10-bin' | 'cifar10-py' | 'cifar100-bin' | 'cifar100-py') under `root`
    in its distributed folder name; returns that folder. python_protocol: None writes Python 2
    pickles as distributed, a number writes a Python 3 re-saved copy at that protocol."""
    family, version = kind.split("-")
    names = CIFAR10_NAMES if family == "cifar10" else CIFAR100_NAMES
    train, train_labels = cifar_images(len(names), train_per_class, 1)
    test, test_labels = cifar_images(len(names), test_per_class, 2)
    folder_name = {"cifar10-bin": "cifar-10-batches-bin", "cifar10-py": "cifar-10-batches-py",
                   "cifar100-bin": "cifar-100-binary", "cifar100-py": "cifar-100-python"}[kind]
    folder = Path(root) / folder_name
    folder.mkdir(parents=True)
    if family == "cifar10":
        batches = {f"data_batch_{i + 1}": part for i, part in enumerate(_chunks(len(train_labels), 5))}
        parts = [(name, train[s], train_labels[s]) for name, s in batches.items()]
        parts.append(("test_batch", test, test_labels))
    else:
        parts = [("train", train, train_labels), ("test", test, test_labels)]
    dump = (lambda obj: py2_pickle(obj)) if python_protocol is None else \
        (lambda obj: pickle.dumps(obj, protocol=python_protocol))
    for name, images, labels in parts:
        if version == "bin":
            head = [labels.astype(np.uint8)[:, None]]
            if family == "cifar100":
                head.insert(0, (labels % 20).astype(np.uint8)[:, None])  # a coarse label byte first
            records = np.concatenate([*head, images.reshape(len(labels), -1)], axis=1)
            (folder / f"{name}.bin").write_bytes(records.tobytes())
        else:
            key = b"labels" if family == "cifar10" else b"fine_labels"
            batch = {b"batch_label": name.encode(), key: labels.tolist(),
                     b"data": images.reshape(len(labels), -1), b"filenames": [b"x.png"] * len(labels)}
            if family == "cifar100":
                batch[b"coarse_labels"] = (labels % 20).tolist()
            (folder / name).write_bytes(dump(batch))
    if kind == "cifar10-bin":
        (folder / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    elif kind == "cifar100-bin":
        (folder / "fine_label_names.txt").write_text("\n".join(names) + "\n")
        (folder / "coarse_label_names.txt").write_text("\n".join(CIFAR100_COARSE) + "\n")
    elif kind == "cifar10-py":
        (folder / "batches.meta").write_bytes(dump({b"label_names": [n.encode() for n in names],
                                                    b"num_cases_per_batch": 10000, b"num_vis": 3072}))
    else:
        (folder / "meta").write_bytes(dump({b"fine_label_names": [n.encode() for n in names],
                                            b"coarse_label_names": [n.encode() for n in CIFAR100_COARSE]}))
    return folder
