"""core.stages.prepare.run_prepare: the dispatch by source kind, called directly."""

from __future__ import annotations

from pathlib import Path

import pytest

from defendr_cli.core.errors import InputError
from defendr_cli.core.stages import prepare as stage
from defendr_cli.core.stages.prepare import PrepareConfig, run_prepare
from defendr_cli.core.workspace import Workspace


def test_synthetic_cache_with_defaults_filled_in(tmp_path):
    ws = Workspace(tmp_path / "ws")
    result = run_prepare(ws, PrepareConfig(classes=3, per_class=10, split="6,2,2", image_size=16, seed=1))
    assert result.path.exists() and result.path.parent == ws.dir_for("data")
    assert result.info.num_classes == 3 and result.info.image_size == 16
    assert result.info.split_counts == {"train": 18, "val": 6, "test": 6}


def test_folder_options_are_refused_for_the_synthetic_source(tmp_path):
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(InputError, match="--class-list"):
        run_prepare(ws, PrepareConfig(class_list=Path("wnids.txt")))
    with pytest.raises(InputError, match="--resize"):
        run_prepare(ws, PrepareConfig(resize="center-crop"))


def test_source_kinds_dispatch_by_table(tmp_path, monkeypatch):
    assert set(stage.SOURCE_KINDS) == {"synthetic", "imagenet", "folder", "cifar10-bin", "cifar10-py",
                                       "cifar100-bin", "cifar100-py"}
    seen = []
    monkeypatch.setitem(stage.SOURCE_KINDS, "folder",
                        lambda ws, config, path, kind, reporter: seen.append((config, path, kind)) or "made")
    (tmp_path / "cats").mkdir()
    config = PrepareConfig(source=str(tmp_path), format="folder", classes=2)
    assert run_prepare(Workspace(tmp_path / "ws"), config) == "made" and seen == [(config, tmp_path, "folder")]
