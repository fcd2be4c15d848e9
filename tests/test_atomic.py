"""Full disks and read-only folders (core.atomic): one line naming the path and the space needed,
no partial file left, the earlier artefact untouched. A real small tmpfs when the tests run as
root and may mount; otherwise ENOSPC / EROFS are raised at the write call."""

from __future__ import annotations

import builtins
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from defendr_cli.core.atomic import atomic_path, write_bytes_atomic
from defendr_cli.core.errors import WriteError
from defendr_cli.core.io.checkpoint import read_checkpoint, save_checkpoint
from defendr_cli.core.io.checkpoint_record import Checkpoint

ROOT = Path(__file__).resolve().parents[1]


def payload(numbers: int) -> Checkpoint:
    return Checkpoint(kind="classifier", name="m", config={},
                      state_dict={"w": torch.arange(numbers, dtype=torch.float32)})


def _mount(path: Path, options: str) -> bool:
    if os.geteuid() != 0:
        return False
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    """A folder on a 1 MiB file system: a real tmpfs, or (not root) one whose writes past 1 MiB fail."""
    folder = tmp_path / "small"
    if _mount(folder, "size=1m"):
        yield folder
        subprocess.run(["umount", "-l", str(folder)], check=False)
        return
    folder.mkdir()
    real_open = builtins.open

    class Limited:
        def __init__(self, handle):
            self.handle, self.count = handle, 0

        def write(self, data):
            self.count += len(memoryview(data).cast("B"))
            if self.count > 1 << 20:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.handle.write(data)

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    def limited_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        return Limited(handle) if str(file).startswith(str(folder)) and "w" in mode else handle

    monkeypatch.setattr(builtins, "open", limited_open)
    monkeypatch.setattr("defendr_cli.core.atomic.free_bytes", lambda _folder: 1 << 20)
    yield folder


def test_a_checkpoint_too_large_for_the_disk_is_refused_and_the_old_one_kept(small_disk):
    path = small_disk / "m.pt"
    save_checkpoint(path, payload(1000))
    before = path.read_bytes()
    with pytest.raises(WriteError) as info:
        save_checkpoint(path, payload(1_000_000), force=True)  # 4 MB of weights
    message = str(info.value)
    assert str(path) in message and "MB" in message and "\n" not in message
    assert path.read_bytes() == before and read_checkpoint(path).name == "m"
    assert sorted(p.name for p in small_disk.iterdir()) == ["m.pt"]


def test_a_write_that_fills_the_disk_midway_leaves_nothing(small_disk, monkeypatch):
    monkeypatch.setattr("defendr_cli.core.atomic.check_space", lambda final, needed: None)  # skip the early check
    with pytest.raises(WriteError, match="no space left on the device writing"):
        write_bytes_atomic(small_disk / "big.bin", b"x" * (3 << 20))
    assert list(small_disk.iterdir()) == []


def test_the_cli_names_the_path_and_the_space_needed(tmp_path):
    work = tmp_path / "ws"
    if not _mount(work, "size=256k"):
        pytest.skip("needs root to mount a small tmpfs (the library-level tests above cover the rest)")
    try:
        args = [sys.executable, "-m", "defendr_cli", "--workdir", str(work), "prepare", "--source", "synthetic",
                "--classes", "4", "--per-class", "100", "--split", "80,10,10", "--image-size", "32"]
        result = subprocess.run(args, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                                text=True, timeout=300)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, result.stderr
        assert "not enough space" in lines[0] and "MB" in lines[0] and "synthetic-c4-n100-32px.h5" in lines[0]
        assert not list((work / "data").glob("*.h5")) and not list((work / "data").glob(".*partial*"))
    finally:
        subprocess.run(["umount", "-l", str(work)], check=False)


def test_a_read_only_workspace_is_one_line(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    mounted = _mount(folder, "size=1m,ro")
    if not mounted:
        folder.mkdir()

        def refuse(*args, **kwargs):
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr("defendr_cli.core.locks.os.open", refuse)
    try:
        with pytest.raises(WriteError) as info:
            with atomic_path(folder / "models" / "m.pt") as tmp:
                tmp.write_bytes(b"never")
        assert "read-only file system" in str(info.value) and str(folder) in str(info.value)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)
