"""`defendr prepare` from the CLI: synthetic source, --force, bad options, ImageNet folder."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from defendr_cli.cli.app import app
from defendr_cli.core.io.reader import read_cache_info


def _run(root, *args):
    return CliRunner().invoke(app, ["--workdir", str(root), *args])


def test_prepare_synthetic_then_refuse_then_force(tmp_path):
    args = ["prepare", "--source", "synthetic", "--classes", "4", "--per-class", "10", "--image-size", "16"]
    first = _run(tmp_path, *args)
    assert first.exit_code == 0, first.output
    assert "synthetic-c4-n10-16px" in first.output and "train 32 / val 4 / test 4" in first.output
    path = tmp_path / "data" / "synthetic-c4-n10-16px.h5"
    fingerprint = read_cache_info(path).fingerprint
    again = _run(tmp_path, *args)
    assert again.exit_code == 1 and "--force" in again.output
    forced = _run(tmp_path, *args, "--force", "--json")
    assert forced.exit_code == 0
    assert json.loads(forced.output)["fingerprint"] == fingerprint  # deterministic per seed


def test_prepare_synthetic_options_and_errors(tmp_path):
    ok = _run(tmp_path, "prepare", "--classes", "3", "--per-class", "70", "--split", "54,6,10",
              "--image-size", "8", "--seed", "2", "--name", "tiny", "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["split_counts"] == {"train": 162, "val": 18, "test": 30}
    assert read_cache_info(tmp_path / "data" / "tiny.h5").seed == 2
    bad_split = _run(tmp_path, "prepare", "--per-class", "10", "--split", "54,6,10")
    assert bad_split.exit_code == 1 and "adds up" in bad_split.output
    bad_size = _run(tmp_path, "prepare", "--image-size", "4")
    assert bad_size.exit_code == 1 and "--image-size" in bad_size.output
    missing = _run(tmp_path, "prepare", "--source", str(tmp_path / "nowhere"))
    assert missing.exit_code == 1 and "error (source)" in missing.output


def test_prepare_from_an_imagenet_folder(tmp_path):
    from tests.data.folder_helpers import make_imagenet_folder

    train = make_imagenet_folder(tmp_path / "src")
    ws = tmp_path / "ws"
    result = _run(ws, "prepare", "--source", str(train), "--classes", "3", "--per-class", "11", "--split",
                  "9,1,1", "--image-size", "16", "--workers", "2", "--allow-short")
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "imagenet-c3-n11-16px" in out and "n00000002/truncated.JPEG: truncated image" in out
    assert "n00000002/notes.JPEG: not an image" in out and "short classes" in out
    strict = _run(ws, "prepare", "--source", str(train), "--classes", "4", "--per-class", "3", "--image-size", "8")
    assert strict.exit_code == 1 and "n00000004 (0)" in strict.output and "--allow-short" in strict.output


def test_prepare_cifar_detected_and_with_format(tmp_path):
    from tests.data.cifar_helpers import make_cifar

    make_cifar(tmp_path / "src", "cifar10-bin", train_per_class=5, test_per_class=3)
    ws = tmp_path / "ws"
    detected = _run(ws, "prepare", "--source", str(tmp_path / "src"))
    assert detected.exit_code == 0, detected.output
    out = " ".join(detected.output.split())
    assert "cifar10-c10-n8-32px" in out and "train 40 / val 10 / test 30" in out and "airplane .. truck" in out
    make_cifar(tmp_path / "py", "cifar100-py", train_per_class=4, test_per_class=2)
    chosen = _run(ws, "prepare", "--source", str(tmp_path / "py"), "--format", "cifar100", "--classes", "5",
                  "--split", "3,1,2", "--image-size", "16", "--json")
    assert chosen.exit_code == 0, chosen.output
    assert json.loads(chosen.output)["split_counts"] == {"train": 15, "val": 5, "test": 10}
    wrong = _run(ws, "prepare", "--source", str(tmp_path / "py"), "--format", "cifar10")
    assert wrong.exit_code == 1 and "looks like cifar100-py" in wrong.output


def test_prepare_refuses_a_poisoned_cifar_pickle(tmp_path):
    import os
    import pickle

    from tests.data.cifar_helpers import make_cifar

    class Poison:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'marker'}",)

    folder = make_cifar(tmp_path / "src", "cifar10-py", train_per_class=1, test_per_class=1)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": Poison()}))
    result = _run(tmp_path / "ws", "prepare", "--source", str(folder))
    assert result.exit_code == 1 and "refused to load" in result.output and "system" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "marker").exists()


def test_prepare_class_folders_and_one_class_errors(tmp_path):
    from tests.data.folder_helpers import make_class_folders

    source = make_class_folders(tmp_path / "flowers", ["rose", "tulip"], per_class=4)
    ws = tmp_path / "ws"
    result = _run(ws, "prepare", "--source", str(source), "--format", "folder", "--per-class", "4",
                  "--image-size", "8", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert read_cache_info(ws / "data" / "folder-c2-n4-8px.h5").class_ids == ["rose", "tulip"]
    for args in (["--source", "synthetic", "--classes", "1"], ["--source", str(source), "--classes", "1"]):
        one = _run(ws, "prepare", *args, "--per-class", "4")
        assert one.exit_code == 1 and "--classes must be >= 2, got 1" in one.output  # cli/option_ranges.py
        assert len(one.output.strip().splitlines()) == 1
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "notes.txt").write_text("x")
    odd = _run(ws, "prepare", "--source", str(tmp_path / "odd"))
    assert odd.exit_code == 1 and "1 file(s) (notes.txt)" in " ".join(odd.output.split())
