"""Helpers for the data-parallel tests: run the CLI under torchrun with CPU processes (gloo), and
compare HDF5 files dataset by dataset and attribute by attribute."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[2]


def _torchrun(target: list[str], nproc: int, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO)}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *target]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"torchrun failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


def torchrun_cli(workdir: Path, args: list[str], *, nproc: int = 2, timeout: float = 120) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc-per-node N -m defendr_cli --workdir W ARGS --device cpu` (1 thread each)."""
    return _torchrun(["-m", "defendr_cli", "--workdir", str(workdir), *args, "--device", "cpu"], nproc, timeout)


def torchrun_sequence(workdir: Path, commands: list[list[str]], *, nproc: int = 2,
                      timeout: float = 180) -> subprocess.CompletedProcess:
    """Several CLI commands (each `--workdir W ARGS --device cpu`) one after another in the same
    torchrun workers (tests/distributed/run_cli_sequence.py), saving process start-up time."""
    sequence = [["--workdir", str(workdir), *args, "--device", "cpu"] for args in commands]
    script = str(REPO / "tests" / "distributed" / "run_cli_sequence.py")
    return _torchrun([script, json.dumps(sequence)], nproc, timeout)


def h5_contents(path: Path) -> dict:
    """{'/dataset': array, '@attr': value} of every dataset and attribute (file and groups)."""
    out: dict = {}
    with h5py.File(path, "r") as handle:
        for key, value in handle.attrs.items():
            out[f"@{key}"] = value
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[f"/{name}"] = obj[...]
                out[f"/{name}:dtype"] = str(obj.dtype)
            for key, value in obj.attrs.items():
                out[f"/{name}@{key}"] = value
        handle.visititems(visit)
    return out


def assert_same_h5(a: Path, b: Path) -> None:
    """Same datasets (bit-identical arrays, same dtypes) and same attributes in both files."""
    left, right = h5_contents(a), h5_contents(b)
    assert sorted(left) == sorted(right), set(left) ^ set(right)
    for key in left:
        x, y = np.asarray(left[key]), np.asarray(right[key])
        assert x.dtype == y.dtype and x.shape == y.shape, key
        assert x.tobytes() == y.tobytes(), f"{key} differs"
