"""prepare from an ImageNet-layout folder of real files: modes, bad files, short classes, names."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from defendr_cli.core.data.imagenet_prepare import class_split, prepare_imagenet
from defendr_cli.core.data.imagenet_source import decode_image
from defendr_cli.core.io.reader import SplitReader, read_cache_info
from defendr_cli.core.data.splits import SplitSpec
from defendr_cli.core.errors import ArtefactExistsError, InputError, SourceError

from .folder_helpers import make_imagenet_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_imagenet_folder(tmp_path_factory.mktemp("imagenet"))


def test_every_mode_decodes_to_rgb_and_bad_files_are_reasons(folder):
    cls = folder / "n00000002"
    for name in ("gray.JPEG", "cmyk.JPEG", "rgb.png", "pal.png", "alpha.png", "n00000002_0.JPEG"):
        for resize in ("stretch", "center-crop"):
            result = decode_image(str(cls / name), 16, resize)
            assert result.image is not None, (name, result.reason)
            assert result.image.shape == (3, 16, 16) and result.image.dtype == np.uint8
    gray = decode_image(str(cls / "gray.JPEG"), 16).image
    assert np.array_equal(gray[0], gray[1]) and np.array_equal(gray[1], gray[2])
    assert decode_image(str(cls / "truncated.JPEG"), 16).reason == "truncated image"
    assert decode_image(str(cls / "notes.JPEG"), 16).reason == "not an image"


def test_prepare_skips_lists_and_replaces_bad_files(folder, workspace):
    # class n00000002 holds 6 good JPEGs + 5 other good files + 2 bad ones: 11 usable of 13
    result = prepare_imagenet(workspace, folder.parent, classes=3, per_class=6, split="4,1,1", image_size=16,
                              workers=2, seed=1)
    info = read_cache_info(result.path)
    assert result.path.name == "imagenet-c3-n6-16px-seed1.h5"
    assert info.class_ids == ["n00000001", "n00000002", "n00000003"]
    assert info.split_counts == {"train": 12, "val": 3, "test": 3}
    assert info.resize == "stretch" and info.source_kind == "imagenet"
    with SplitReader(result.path, "train") as reader:
        assert reader.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
        assert all(sid.startswith(f"n0000000{lab + 1}/") for sid, lab in zip(reader.source_ids, reader.labels))
    all_ids = [sid for s in ("train", "val", "test") for sid in SplitReader(result.path, s).source_ids]
    assert len(set(all_ids)) == 18 and not any("truncated" in s or "notes" in s for s in all_ids)
    skipped = {s.path: s.reason for s in result.skipped}
    assert set(skipped) <= {"n00000002/truncated.JPEG", "n00000002/notes.JPEG"}
    assert result.replaced == len(result.skipped)


def test_all_files_of_a_class_are_used_and_bad_ones_counted(folder, workspace):
    result = prepare_imagenet(workspace, folder, class_list=None, classes=2, per_class=11, split="9,1,1",
                              image_size=12, workers=1, allow_short=True)
    # class 1 has 6 files only (short, kept); class 2 has 13 files of which 11 decode
    assert result.short_classes == {"n00000001": 6}
    assert sorted(s.path for s in result.skipped) == ["n00000002/notes.JPEG", "n00000002/truncated.JPEG"]
    with SplitReader(result.path, "train") as reader:
        counts = np.bincount(reader.labels, minlength=2)
    assert counts.tolist() == [class_split(SplitSpec(9, 1, 1), 6).train, 9]


def test_deterministic_per_seed_and_choice_changes_with_seed(folder, workspace):
    kwargs = dict(classes=2, per_class=3, split="1,1,1", image_size=8, workers=1)
    a = prepare_imagenet(workspace, folder, seed=0, name="a", **kwargs)
    b = prepare_imagenet(workspace, folder, seed=0, name="b", **kwargs)
    assert a.info.fingerprint == b.info.fingerprint
    chosen = set()
    for seed in range(6):
        result = prepare_imagenet(workspace, folder, seed=seed, name=f"s{seed}", **kwargs)
        with SplitReader(result.path, "train") as reader:
            chosen.add(tuple(reader.source_ids))
    assert len(chosen) > 1


def test_short_and_empty_classes_stop_the_run_naming_them(folder, workspace, tmp_path):
    with pytest.raises(SourceError, match="n00000001 \\(6\\)"):
        prepare_imagenet(workspace, folder, classes=2, per_class=7, image_size=8, workers=1)
    with pytest.raises(SourceError, match="n00000004 \\(0\\)"):
        prepare_imagenet(workspace, folder, classes=4, per_class=3, image_size=8, workers=1)
    # 13 files >= 12 needed, so the early check passes; 2 are unreadable -> 11 < 12 after decoding
    # (a fresh copy whose n00000001 has 12 good files, since a cache needs two classes)
    fresh = make_imagenet_folder(tmp_path / "fresh")
    for good in sorted((fresh / "n00000001").iterdir()):
        shutil.copy(good, good.with_name("copy_" + good.name))
    with pytest.raises(SourceError, match="n00000002 has only 11 readable"):
        prepare_imagenet(workspace, fresh, class_list=_list(workspace, "n00000001", "n00000002"), per_class=12,
                         split="10,1,1", image_size=8, workers=2)
    assert workspace.names("data") == []
    assert not any(workspace.data_dir.iterdir())  # no partial file left behind


def _list(workspace, *wnids):
    path = workspace.root.parent / "classes.txt"
    path.write_text("# chosen classes\n" + "\n".join(wnids) + "\n")
    return path


def test_class_list_names_force_and_errors(folder, workspace):
    (folder.parent / "LOC_synset_mapping.txt").write_text("n00000003 teapot, tea kettle\nn00000001 tench, fish\n")
    try:
        result = prepare_imagenet(workspace, folder, class_list=_list(workspace, "n00000003", "n00000001"),
                                  per_class=3, split="1,1,1", image_size=8, resize="center-crop", workers=1)
    finally:
        (folder.parent / "LOC_synset_mapping.txt").unlink()
    assert result.info.class_ids == ["n00000003", "n00000001"] and result.info.class_names == ["teapot", "tench"]
    assert result.info.resize == "center-crop" and result.path.name == "imagenet-list-c2-n3-8px-crop.h5"
    with pytest.raises(ArtefactExistsError):
        prepare_imagenet(workspace, folder, class_list=_list(workspace, "n00000003", "n00000001"),
                         per_class=3, split="1,1,1", image_size=8, resize="center-crop", workers=1)
    unnamed = prepare_imagenet(workspace, folder, classes=2, per_class=3, split="1,1,1", image_size=8, workers=1)
    assert unnamed.info.class_names == ["n00000001", "n00000002"]  # not in the shipped table: the wnid itself
    with pytest.raises(SourceError, match="n09999999"):
        prepare_imagenet(workspace, folder, class_list=_list(workspace, "n09999999"), per_class=3, image_size=8)
    with pytest.raises(SourceError, match="only 4 class folders"):
        prepare_imagenet(workspace, folder, classes=5, per_class=3, image_size=8)
    with pytest.raises(InputError, match="--resize"):
        prepare_imagenet(workspace, folder, classes=2, per_class=3, image_size=8, resize="squash")


def test_shipped_table_names_real_wnids():
    from defendr_cli.core.data.class_names import class_names_for, shipped_names

    table = shipped_names()
    assert len(table) == 1000 and list(table) == sorted(table)
    assert table["n01440764"] == "tench"
    names, origin = class_names_for(["n01440764", "n99999999"])
    assert names == ["tench", "n99999999"] and "shipped" in origin
