"""Format detection for `prepare --source` (and `--format` overriding or checking it)."""

from __future__ import annotations

import pytest

from defendr_cli.core.data.source_detect import detect_format, resolve_source
from defendr_cli.core.errors import InputError, SourceError

from .cifar_helpers import make_cifar
from .folder_helpers import make_class_folders, make_imagenet_folder, save_flat


@pytest.mark.parametrize("kind", ["cifar10-bin", "cifar10-py", "cifar100-bin", "cifar100-py"])
def test_cifar_versions_from_their_folder_or_its_parent(tmp_path, kind):
    folder = make_cifar(tmp_path, kind, train_per_class=1, test_per_class=1)
    assert detect_format(folder) == detect_format(tmp_path)
    detected = detect_format(tmp_path)
    assert detected.kind == kind and detected.path == folder
    assert resolve_source(str(tmp_path), kind.split("-")[0]).kind == kind
    other = "cifar100" if kind.startswith("cifar10-") else "cifar10"
    with pytest.raises(SourceError, match=f"--format {other} given, but .* looks like {kind}"):
        resolve_source(str(tmp_path), other)


def test_two_cifar_versions_side_by_side_must_be_chosen(tmp_path):
    make_cifar(tmp_path, "cifar10-bin", train_per_class=1, test_per_class=1)
    make_cifar(tmp_path, "cifar10-py", train_per_class=1, test_per_class=1)
    with pytest.raises(SourceError, match="several CIFAR versions .*cifar-10-batches-bin"):
        detect_format(tmp_path)
    assert detect_format(tmp_path / "cifar-10-batches-py").kind == "cifar10-py"


def test_imagenet_wnids_versus_any_class_folder(tmp_path):
    train = make_imagenet_folder(tmp_path / "imagenet", per_class=1, with_problems=False)
    assert detect_format(train.parent).kind == "imagenet" and detect_format(train).kind == "imagenet"
    flowers = make_class_folders(tmp_path / "flowers", ["rose", "n00000001"], per_class=1)
    assert detect_format(flowers) == resolve_source(flowers, "folder")
    assert detect_format(flowers).kind == "folder"
    assert resolve_source(flowers, "imagenet").kind == "imagenet"  # --format overrides detection
    assert detect_format("synthetic").kind == "synthetic" and resolve_source("synthetic").path is None


def test_nothing_matches_names_what_was_found(tmp_path):
    odd = tmp_path / "odd"
    (odd / "empty-class").mkdir(parents=True)
    for name in ("a.csv", "b.txt", "readme.md"):
        (odd / name).write_text("x")
    save_flat(odd / "loose.png", (4, 4), (1, 2, 3))  # an image, but not inside a class folder
    with pytest.raises(SourceError) as caught:
        detect_format(odd)
    message = str(caught.value)
    assert "cannot tell what" in message and "\n" not in message
    assert "4 file(s) (a.csv, b.txt, loose.png, readme.md)" in message
    assert "1 folder(s) without images (empty-class)" in message
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="found an empty folder"):
        detect_format(tmp_path / "empty")
    archive = tmp_path / "cifar-10-binary.tar.gz"
    archive.write_bytes(b"\x1f\x8b")
    with pytest.raises(SourceError, match="is a file, not a folder: unpack"):
        detect_format(archive)
    with pytest.raises(SourceError, match="does not exist"):
        detect_format(tmp_path / "nowhere")


def test_format_values_are_checked(tmp_path):
    with pytest.raises(InputError, match="unknown --format 'cifar'"):
        resolve_source("synthetic", "cifar")
    with pytest.raises(InputError, match="--format synthetic takes --source synthetic"):
        resolve_source(str(tmp_path), "synthetic")
    with pytest.raises(SourceError, match="not a folder"):
        resolve_source(str(tmp_path / "nowhere"), "folder")
