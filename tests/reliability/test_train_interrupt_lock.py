"""`defendr train` in real processes: Ctrl-C then --resume equals one run bit for bit, and a second
train of the same name stops at once naming the first (the whole run holds the model's lock)."""

from __future__ import annotations

import signal

import pytest
import torch

from defendr_cli.core.data.prepare import prepare_synthetic
from defendr_cli.core.io.checkpoint import read_checkpoint
from defendr_cli.core.progress import INTERRUPT_ENV
from defendr_cli.core.training.resume import best_path
from defendr_cli.core.workspace import Workspace
from tests.reliability.processes import assert_refused_naming, defendr, wait_until_locked

TRAIN = ["train", "baseline", "--arch", "tinycnn", "--batch-size", "8", "--device", "cpu", "--seed", "3"]


@pytest.fixture
def ws(tmp_path):
    ws = Workspace(tmp_path / "ws")
    prepare_synthetic(ws, classes=2, per_class=10, image_size=16, split="6,2,2", seed=0, name="tiny")
    return ws


def _same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_ctrl_c_then_resume_equals_one_uninterrupted_run(ws, tmp_path):
    once = defendr(ws, *TRAIN, "--epochs", "3", "--name", "once")
    assert once.wait(timeout=300) == 0, once.stderr.read()

    cut = defendr(ws, *TRAIN, "--epochs", "3", "--name", "cut", env={INTERRUPT_ENV: "1"})
    out, err = cut.communicate(timeout=300)
    assert cut.returncode != 0 and (ws.root / "models").exists(), err
    resumed = defendr(ws, *TRAIN, "--epochs", "3", "--name", "cut", "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err

    a, b = read_checkpoint(ws.path_for("model", "once")), read_checkpoint(ws.path_for("model", "cut"))
    _same_state(a.state_dict, b.state_dict)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(a.history) == strip(b.history) and len(a.history) == 3
    assert a.best["epoch"] == b.best["epoch"]


def test_second_train_of_the_same_name_stops_at_once_naming_the_first(ws):
    first = defendr(ws, *TRAIN, "--epochs", "100000", "--name", "slow")
    try:
        wait_until_locked(first, ws.path_for("model", "slow", create_dir=False))
        assert_refused_naming(defendr(ws, *TRAIN, "--epochs", "1", "--name", "slow", "--force"), first)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)


def test_force_retrain_killed_after_epoch_1_leaves_the_old_model_byte_identical(ws):
    done = defendr(ws, *TRAIN, "--epochs", "1", "--name", "keep")
    assert done.wait(timeout=300) == 0, done.stderr.read()
    model = ws.path_for("model", "keep")
    before = model.read_bytes()
    cut = defendr(ws, *TRAIN, "--epochs", "3", "--seed", "4", "--name", "keep", "--force", env={INTERRUPT_ENV: "1"})
    out, err = cut.communicate(timeout=300)
    assert cut.returncode != 0, out + err
    assert model.read_bytes() == before
    assert read_checkpoint(best_path(ws, "keep")).complete is False
    again = defendr(ws, *TRAIN, "--epochs", "1", "--name", "keep")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 1 and "--resume" in err.strip().splitlines()[-1], err
