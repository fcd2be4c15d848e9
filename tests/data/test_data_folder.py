"""prepare from generic class folders, and prepare on broken image folders (each breakage pinned)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from defendr_cli.core.data import imagenet_source
from defendr_cli.core.data.folder_prepare import prepare_folder
from defendr_cli.core.data.prepare import prepare_synthetic
from defendr_cli.core.errors import InputError, SourceError
from defendr_cli.core.io.reader import SplitReader, read_cache_info

from .folder_helpers import flat_colour, make_class_folders, save_flat

CLASSES = ["tulip", "Rose garden", "daisy-2"]


def _rows(path):
    """{source id: image uint8 (3,S,S)} and {source id: label} over every split of a cache."""
    images, labels = {}, {}
    for split in ("train", "val", "test"):
        with SplitReader(path, split) as reader:
            for row, sid in enumerate(reader.source_ids):
                images[sid] = reader.read_uint8([row])[0]
                labels[sid] = int(reader.labels[row])
    return images, labels


def _prepare(workspace, source, **kwargs):
    options = dict(per_class=4, split="2,1,1", image_size=8, workers=1, seed=0)
    options.update(kwargs)
    return prepare_folder(workspace, source, **options)


def test_arbitrary_class_names_in_sorted_order(tmp_path, workspace):
    source = make_class_folders(tmp_path / "flowers", CLASSES, per_class=5, suffix=".png")
    result = _prepare(workspace, source, per_class=5, split="3,1,1", workers=2)
    info = read_cache_info(result.path)
    assert info.class_ids == sorted(CLASSES) == info.class_names
    assert info.source_kind == "folder" and result.path.name == "folder-c3-n5-8px.h5"
    assert info.split_counts == {"train": 9, "val": 3, "test": 3} and info.image_size == 8
    images, labels = _rows(result.path)
    for sid, image in images.items():
        cls, filename = sid.split("/")
        assert labels[sid] == sorted(CLASSES).index(cls)
        colour = flat_colour(CLASSES.index(cls), int(filename[4]))
        assert (image == np.array(colour, dtype=np.uint8)[:, None, None]).all()  # decoded and resized
    nested = tmp_path / "nested"
    shutil.copytree(source, nested / "train")  # root/train/<class>/ is read like root/<class>/
    again = _prepare(workspace, nested, per_class=5, split="3,1,1", name="nested")
    assert again.info.fingerprint == result.info.fingerprint


def test_classes_and_class_list_choose_folders(tmp_path, workspace):
    source = make_class_folders(tmp_path / "src", CLASSES)
    first_two = _prepare(workspace, source, classes=2)
    assert first_two.info.class_ids == sorted(CLASSES)[:2]
    listing = tmp_path / "classes.txt"
    listing.write_text("tulip\ndaisy-2\n")
    chosen = _prepare(workspace, source, class_list=listing)
    assert chosen.info.class_ids == ["tulip", "daisy-2"] and chosen.path.name.startswith("folder-list-c2")


def test_fewer_than_two_classes_is_an_input_error(tmp_path, workspace):
    source = make_class_folders(tmp_path / "one", ["only"])
    with pytest.raises(InputError, match="at least 2 classes"):
        _prepare(workspace, source)
    with pytest.raises(InputError, match="at least 2 classes, not 1"):
        _prepare(workspace, make_class_folders(tmp_path / "three", CLASSES), classes=1)
    with pytest.raises(InputError, match="at least 2 classes, not 1"):
        prepare_synthetic(workspace, classes=1, per_class=3, image_size=8)
    assert not workspace.data_dir.exists() or not any(workspace.data_dir.iterdir())


# -- broken folders: each file below is skipped (or used) and the run completes ----------------
@pytest.fixture
def broken(tmp_path):
    """Two good classes of 4 PNGs each; tests add one problem file to class 'b'."""
    return make_class_folders(tmp_path / "src", ["a", "b"], suffix=".png")


def _prepare_broken(workspace, source, per_class=5):
    """Ask for 5 images per class; class b has 4 good files plus the problem one."""
    return _prepare(workspace, source, per_class=per_class, split=f"{per_class - 2},1,1", allow_short=True)


@pytest.mark.parametrize("make_bad, reason", [
    (lambda p: p.write_bytes(b""), "not an image"),                        # zero-byte
    (lambda p: p.write_text("just some notes, renamed\n"), "not an image"),  # a .txt renamed .jpg
    (lambda p: p.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 40), None),     # a JPEG header and nothing else
])
def test_unusable_files_are_skipped_with_a_reason(broken, workspace, make_bad, reason):
    make_bad(broken / "b" / "bad.jpg")
    result = _prepare_broken(workspace, broken)
    assert [s.path for s in result.skipped] == ["b/bad.jpg"]
    if reason:
        assert result.skipped[0].reason == reason
    assert result.short_classes == {"a": 4, "b": 4}
    images, _ = _rows(result.path)
    assert "b/bad.jpg" not in images and len(images) == 8


def test_a_tiny_image_is_used(broken, workspace):
    save_flat(broken / "b" / "tiny.png", (1, 1), (200, 10, 30))
    result = _prepare_broken(workspace, broken)
    assert result.skipped == [] and result.short_classes == {"a": 4}
    images, _ = _rows(result.path)
    assert (images["b/tiny.png"] == np.array([200, 10, 30], dtype=np.uint8)[:, None, None]).all()


def test_a_huge_image_is_used_and_a_decompression_bomb_skipped(broken, workspace, monkeypatch):
    save_flat(broken / "b" / "huge.png", (6000, 6000), (30, 200, 90))  # 36 Mpixels, a few kB on disk
    result = _prepare_broken(workspace, broken)
    images, _ = _rows(result.path)
    assert result.skipped == [] and (images["b/huge.png"] == np.array([30, 200, 90], np.uint8)[:, None, None]).all()
    # PIL refuses an image over twice MAX_IMAGE_PIXELS (DecompressionBombError): skipped, with a note
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    bombed = _prepare(workspace, broken, per_class=5, split="3,1,1", allow_short=True, force=True)
    assert [s.path for s in bombed.skipped] == ["b/huge.png"]
    assert "image too large" in bombed.skipped[0].reason and "decompression-bomb" in bombed.skipped[0].reason


def test_an_unreadable_file_is_skipped(broken, workspace, monkeypatch):
    locked = save_flat(broken / "b" / "locked.png", (10, 10), (1, 2, 3))
    if os.geteuid() != 0:
        locked.chmod(0)
    else:  # root reads any file: make PIL's open fail the way a chmod 000 file does for a user
        real_open = Image.open

        def refuse(path, *args, **kwargs):
            if os.fspath(path) == str(locked):
                raise PermissionError(13, "Permission denied", str(locked))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(imagenet_source.Image, "open", refuse)
    try:
        result = _prepare_broken(workspace, broken)
    finally:
        locked.chmod(0o644)
    assert [(s.path, s.reason) for s in result.skipped] == [("b/locked.png", "permission denied")]


def test_non_ascii_and_non_utf8_names(tmp_path, workspace):
    source = make_class_folders(tmp_path / "src", ["猫", "café au lait"], per_class=3, suffix=".png")
    save_flat(source / "猫" / "ñandú.png", (9, 9), (5, 6, 7))
    latin1 = os.fsdecode(os.fsencode(source / "café au lait") + b"/caf\xe9.png")  # not UTF-8 on disk
    save_flat(latin1, (9, 9), (8, 9, 10))
    other = os.fsdecode(os.fsencode(source) + b"/\xe9t\xe9")  # a class folder named in latin-1
    os.mkdir(other)
    for i in range(4):
        save_flat(os.path.join(other, f"{i}.png"), (9, 9), (i, i, i))
    result = _prepare(workspace, source, split="2,1,1")
    assert result.info.class_ids == ["café au lait", "猫", "\\xe9t\\xe9"]
    images, labels = _rows(result.path)
    assert labels["猫/ñandú.png"] == 1 and labels["café au lait/caf\\xe9.png"] == 0
    assert (images["café au lait/caf\\xe9.png"] == np.array([8, 9, 10], np.uint8)[:, None, None]).all()
    assert sum(1 for sid in images if sid.startswith("\\xe9t\\xe9/")) == 4


def test_symlink_loops_are_left_out(broken, workspace):
    os.symlink(broken, broken / "loop")                  # a class folder that is the root itself
    os.symlink("..", broken / "b" / "up")                # a folder inside a class pointing back up
    os.symlink("y.png", broken / "b" / "x.png")          # two file links pointing at each other
    os.symlink("x.png", broken / "b" / "y.png")
    result = _prepare_broken(workspace, broken, per_class=4)
    assert result.info.class_ids == ["a", "b"] and result.skipped == []
    images, _ = _rows(result.path)
    assert sorted(images) == [f"{c}/img_{i}.png" for c in "ab" for i in range(4)]


def test_a_folder_without_class_folders_is_a_source_error(tmp_path, workspace):
    (tmp_path / "flat").mkdir()
    save_flat(tmp_path / "flat" / "x.png", (4, 4), (0, 0, 0))
    with pytest.raises(SourceError, match="no class folders"):
        _prepare(workspace, tmp_path / "flat")
