"""CIFAR-10 / CIFAR-100 as image sources, binary and python versions, read without running code.

Layouts, as the dataset's authors distribute them:

    cifar-10-batches-bin/  data_batch_1.bin .. data_batch_5.bin, test_batch.bin, batches.meta.txt
                           record = 1 label byte + 3072 pixel bytes
    cifar-100-binary/      train.bin, test.bin, coarse_label_names.txt, fine_label_names.txt
                           record = 1 coarse label byte + 1 fine label byte + 3072 pixel bytes
    cifar-10-batches-py/   data_batch_1 .. data_batch_5, test_batch, batches.meta      (pickles)
    cifar-100-python/      train, test, meta                                          (pickles)

Pixels are 1024 red, 1024 green, then 1024 blue bytes, each a 32x32 image in row order, so a
record reshapes directly to uint8 (3, 32, 32). A python batch is a dict with a uint8 array
`data` (N, 3072) and a list of labels (`labels`, or `fine_labels` for CIFAR-100); the meta
pickles hold `label_names` / `fine_label_names` as lists of bytes. CIFAR-100 uses its 100 fine
labels.

Pickles are read by `RestrictedUnpickler`, which can build numpy arrays and nothing else: a
pickle that asks for any other callable (os.system through __reduce__, say) is refused with a
SourceError before anything of it runs.
"""

from __future__ import annotations

import codecs
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from defendr_cli.core.errors import SourceError

CIFAR_SIDE = 32
PIXELS = 3 * CIFAR_SIDE * CIFAR_SIDE  # 3072 bytes per image


@dataclass(frozen=True)
class CifarLayout:
    """The files of one CIFAR variant, relative to its folder."""

    kind: str            # 'cifar10-bin' | 'cifar10-py' | 'cifar100-bin' | 'cifar100-py'
    title: str           # 'CIFAR-10 binary version'
    family: str          # 'cifar10' | 'cifar100' (cache names, source_kind)
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str            # label names: a text file (binary version) or a pickle (python version)
    num_classes: int
    folder_name: str     # the folder the archive unpacks to

    @property
    def binary(self) -> bool:
        return self.kind.endswith("-bin")

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train, *self.test, self.meta)


CIFAR_LAYOUTS: dict[str, CifarLayout] = {layout.kind: layout for layout in (
    CifarLayout("cifar10-bin", "CIFAR-10 binary version", "cifar10",
                tuple(f"data_batch_{i}.bin" for i in range(1, 6)), ("test_batch.bin",), "batches.meta.txt", 10,
                "cifar-10-batches-bin"),
    CifarLayout("cifar10-py", "CIFAR-10 python version", "cifar10",
                tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "batches.meta", 10,
                "cifar-10-batches-py"),
    CifarLayout("cifar100-bin", "CIFAR-100 binary version", "cifar100", ("train.bin",), ("test.bin",),
                "fine_label_names.txt", 100, "cifar-100-binary"),
    CifarLayout("cifar100-py", "CIFAR-100 python version", "cifar100", ("train",), ("test",), "meta", 100,
                "cifar-100-python"),
)}


@dataclass
class CifarPart:
    """One CIFAR part: images uint8 (N, 3, 32, 32), labels int64 (N,), source ids 'file#row' (N,)."""

    images: np.ndarray
    labels: np.ndarray
    source_ids: list[str]


@dataclass
class CifarData:
    """A whole CIFAR variant as read from disk: class names in label order, train and test parts."""

    layout: CifarLayout
    folder: Path
    class_names: list[str]
    train: CifarPart
    test: CifarPart


# -- the restricted unpickler -------------------------------------------------------------------
def _numpy_callable(module: str, name: str):
    """numpy's array-rebuilding helpers under their numpy 1 or numpy 2 module path."""
    core = getattr(np, "_core", None) or np.core
    return getattr(getattr(core, module), name)


# What an array in a pickle needs: the files as distributed ask for _reconstruct, ndarray and
# dtype; a copy re-saved by Python 3 may also ask for _codecs.encode (bytes at protocol 2) or
# _frombuffer (protocol 5). None of them can run anything else.
_ALLOWED: dict[tuple[str, str], object] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_callable("multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_callable("multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"): _numpy_callable("numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): _numpy_callable("numeric", "_frombuffer"),
    ("_codecs", "encode"): codecs.encode,
}


class RefusedPickleError(pickle.UnpicklingError):
    """The pickle asked for a callable outside the allowed list; nothing of it ran."""


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that builds only plain containers, strings, numbers and numpy arrays."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise RefusedPickleError(f"{module}.{name}") from None

    def persistent_load(self, pid):
        raise RefusedPickleError("a persistent object")


def load_pickle_restricted(path: Path) -> object:
    """Unpickle `path` with RestrictedUnpickler (Python 2 strings come back as bytes).

    Raises SourceError naming the file: refused (the pickle wants to call something else) or
    unreadable.
    """
    try:
        with open(path, "rb") as handle:
            return RestrictedUnpickler(handle, encoding="bytes").load()
    except RefusedPickleError as exc:
        raise SourceError(f"refused to load {path}: the pickle asks for {exc}, which a CIFAR file never needs "
                          f"(only numpy arrays, lists and strings are built)") from None
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # a damaged pickle raises nearly anything: each is the same one-line error
        raise SourceError(f"{path} is not a readable CIFAR python file ({type(exc).__name__})") from None


def _text_keys(value: object, path: Path) -> dict[str, object]:
    if not isinstance(value, dict):
        raise SourceError(f"{path} is not a CIFAR python file (it holds a {type(value).__name__}, not a dict)")
    return {(k.decode("latin-1") if isinstance(k, bytes) else str(k)): v for k, v in value.items()}


def _names(value: object, path: Path, key: str) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (bytes, str)) for v in value):
        raise SourceError(f"{path} has no list of class names under '{key}'")
    return [(v.decode("utf-8", "replace") if isinstance(v, bytes) else v).strip() for v in value]


# -- reading parts and names --------------------------------------------------------------------
def _read_binary(path: Path, layout: CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    label_bytes = 2 if layout.family == "cifar100" else 1
    record = label_bytes + PIXELS
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % record:
        raise SourceError(f"{path} is not a {layout.title} file: {raw.size} bytes is not a whole number of "
                          f"{record}-byte records")
    rows = raw.reshape(-1, record)
    return rows[:, label_bytes:].reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE), rows[:, label_bytes - 1].astype(np.int64)


def _read_python(path: Path, layout: CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    batch = _text_keys(load_pickle_restricted(path), path)
    key = "fine_labels" if layout.family == "cifar100" else "labels"
    data, labels = batch.get("data"), batch.get(key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise SourceError(f"{path}: 'data' must be a uint8 array (N, {PIXELS}), found {found}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        labels = None
    if labels is None or labels.shape != (data.shape[0],):
        raise SourceError(f"{path}: '{key}' must be a list of {data.shape[0]} integer labels")
    return data.reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE), labels


def read_class_names(folder: Path, layout: CifarLayout) -> list[str]:
    """Class names in label order ('airplane', 'automobile', ...) from the variant's meta file."""
    path = folder / layout.meta
    if layout.binary:
        try:
            names = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None
        names = [n for n in names if n]
    else:
        meta = _text_keys(load_pickle_restricted(path), path)
        key = "fine_label_names" if layout.family == "cifar100" else "label_names"
        names = _names(meta.get(key), path, key)
    if len(names) != layout.num_classes or len(set(names)) != len(names):
        raise SourceError(f"{path} must name {layout.num_classes} distinct classes, it names {len(names)}"
                          + ("" if len(set(names)) == len(names) else " with repeats"))
    return names


def _read_part(folder: Path, layout: CifarLayout, files: tuple[str, ...]) -> CifarPart:
    reader = _read_binary if layout.binary else _read_python
    images, labels, ids = [], [], []
    for filename in files:
        batch_images, batch_labels = reader(folder / filename, layout)
        bad = batch_labels[(batch_labels < 0) | (batch_labels >= layout.num_classes)]
        if bad.size:
            raise SourceError(f"{folder / filename} has label {int(bad[0])}, outside 0..{layout.num_classes - 1}")
        images.append(batch_images)
        labels.append(batch_labels)
        ids.extend(f"{filename}#{row}" for row in range(len(batch_labels)))
    return CifarPart(np.concatenate(images), np.concatenate(labels), ids)


def read_cifar(folder: Path, kind: str) -> CifarData:
    """Read every file of the CIFAR variant `kind` (a key of CIFAR_LAYOUTS) in `folder`.

    Raises SourceError naming the first missing, damaged or refused file.
    """
    layout = CIFAR_LAYOUTS[kind]
    folder = Path(folder).expanduser()
    missing = [name for name in layout.files if not (folder / name).is_file()]
    if missing:
        raise SourceError(f"{folder} is missing {', '.join(missing)} of the {layout.title}")
    names = read_class_names(folder, layout)
    return CifarData(layout, folder, names, _read_part(folder, layout, layout.train),
                     _read_part(folder, layout, layout.test))
