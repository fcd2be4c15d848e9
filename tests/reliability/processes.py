"""Real `python -m defendr_cli` processes for the reliability tests: start one, wait for a lock."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from defendr_cli.core.locks import lock_path
from defendr_cli.core.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]


def defendr(ws: Workspace, *args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    """`defendr --workdir WS ARGS...` as a child process of this worktree's package (stdout/stderr piped)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "defendr_cli", "--workdir", str(ws.root), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env, **kwargs)


def run_ok(ws: Workspace, *args: str, env: dict | None = None) -> str:
    """Run to the end; assert exit 0; return stdout."""
    process = defendr(ws, *args, env=env)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return out


def run_interrupted(ws: Workspace, *args: str, env: dict) -> str:
    """Run with the interrupt hook set; assert it stopped with a non-zero exit; return stderr."""
    process = defendr(ws, *args, env=env)
    out, err = process.communicate(timeout=300)
    assert process.returncode != 0, out + err
    return err


def wait_until_locked(process: subprocess.Popen, artefact: Path) -> None:
    """Wait until `process` holds the lock of `artefact` (its lock file names a process)."""
    lock = lock_path(artefact)
    for _ in range(1200):
        if lock.exists() and lock.read_text().startswith("process"):
            return
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.1)
    raise AssertionError(f"{artefact} was never locked")


def assert_refused_naming(second: subprocess.Popen, first: subprocess.Popen) -> None:
    """The second process stopped with exit 1 and one `error (busy)` line naming the first's pid."""
    out, err = second.communicate(timeout=300)
    lines = [line for line in err.splitlines() if line.strip()]
    assert second.returncode == 1, err
    assert lines[-1].startswith("error (busy): ") and f"process {first.pid}" in lines[-1], err
