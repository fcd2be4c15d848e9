"""One writer per artefact (core.locks): re-entrant in a process, refused across processes with a
one-line error naming the holder, released on exit and on a crash of the holder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from defendr_cli.core.errors import ArtefactBusyError
from defendr_cli.core.locks import artefact_lock, lock_path

ROOT = Path(__file__).resolve().parents[1]
HOLDER = """
import sys, time
from pathlib import Path
from defendr_cli.core.locks import artefact_lock
with artefact_lock(Path(sys.argv[1])):
    Path(sys.argv[2]).write_text("held")
    time.sleep(float(sys.argv[3]))
"""


def hold_in_other_process(target: Path, tmp_path: Path, seconds: float = 60.0) -> subprocess.Popen:
    """A real second process that holds the lock of `target` until killed (or `seconds` pass)."""
    ready = tmp_path / f"ready-{target.name}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(target), str(ready), str(seconds)], env=env)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the lock-holding process did not start")
        time.sleep(0.05)
    return proc


def test_reentrant_in_one_process_and_released_after(tmp_path):
    target = tmp_path / "a.h5"
    with artefact_lock(target):
        with artefact_lock(target):
            assert lock_path(target).exists()
        assert lock_path(target).exists()  # the outer block still holds it
    assert not lock_path(target).exists()
    with artefact_lock(target):  # free again
        pass


def test_a_second_process_is_refused_naming_the_holder(tmp_path):
    target = tmp_path / "models" / "baseline.pt"
    proc = hold_in_other_process(target, tmp_path)
    try:
        with pytest.raises(ArtefactBusyError) as info:
            with artefact_lock(target):
                pytest.fail("entered a lock another process holds")
        message = str(info.value)
        assert f"process {proc.pid}" in message and str(target) in message and "\n" not in message
    finally:
        proc.kill()
        proc.wait()
    with artefact_lock(target):  # a killed holder leaves no stale lock
        pass


def test_the_cli_stops_at_once_when_another_process_writes_the_same_cache(tmp_path):
    work = tmp_path / "ws"
    name = "synthetic-c2-n30-16px"
    args = [sys.executable, "-m", "defendr_cli", "--workdir", str(work), "prepare", "--source", "synthetic",
            "--classes", "2", "--per-class", "30", "--split", "20,4,6", "--image-size", "16"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    cache = work / "data" / f"{name}.h5"
    before = cache.read_bytes()
    proc = hold_in_other_process(cache, tmp_path)
    try:
        second = subprocess.run(args + ["--force"], env=env, capture_output=True, text=True, timeout=300)
    finally:
        proc.kill()
        proc.wait()
    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "busy" in lines[0] and f"process {proc.pid}" in lines[0], second.stderr
    assert cache.read_bytes() == before
    # only the cache and (the holder was killed, it could not clean up) its lock file, no partial file
    assert {p.name for p in cache.parent.iterdir()} <= {cache.name, lock_path(cache).name}
