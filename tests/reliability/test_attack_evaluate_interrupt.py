"""`defendr attack` and `defendr evaluate` in real processes: a real SIGINT at a known point, then the
same command with --resume, gives what one uninterrupted run gives (sets bit for bit, results.json
numbers equal); a second evaluate of the same report stops at once naming the first."""

from __future__ import annotations

import json
import shutil
import signal

import h5py
import numpy as np
import pytest

from defendr_cli.core.data.prepare import prepare_synthetic
from defendr_cli.core.io.adversarial import partial_adv_path
from defendr_cli.core.progress import INTERRUPT_ENV
from defendr_cli.core.workspace import Workspace
from tests.reliability.processes import (
    assert_refused_naming,
    defendr,
    run_interrupted,
    run_ok,
    wait_until_locked,
)

# pgd with random starts and random targets: the resumed batches must redraw the same randomness
ATTACK = ["attack", "pgd", "--eps", "8/255,16/255", "--steps", "2", "--targeted", "random", "--split", "train,test",
          "--batch-size", "2", "--device", "cpu", "--seed", "5"]
EVALUATE = ["evaluate", "--models", "baseline,other", "--adaptive", "--steps", "1,2", "--restarts", "1",
            "--subset", "3", "--eot", "2", "--batch-size", "4", "--device", "cpu", "--name", "rep"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A workspace with a tiny cache and two tiny trained models (made once for this module)."""
    ws = Workspace(tmp_path_factory.mktemp("attack-evaluate") / "ws")
    prepare_synthetic(ws, classes=2, per_class=10, image_size=16, split="6,2,2", seed=0, name="tiny")
    for name, seed in (("baseline", "1"), ("other", "2")):
        run_ok(ws, "train", "baseline", "--name", name, "--arch", "tinycnn", "--epochs", "1", "--batch-size", "8", "--device", "cpu",
               "--seed", seed)
    return ws


def _copy(ws: Workspace, target) -> Workspace:
    shutil.copytree(ws.root, target)
    return Workspace(target)


def _set_contents(path) -> tuple[dict, dict]:
    with h5py.File(path, "r") as handle:
        data = {}
        handle.visititems(lambda name, obj: data.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        attrs = {k: v for k, v in handle.attrs.items() if "time" not in k and "created" not in k}
    return data, attrs


def test_attack_ctrl_c_then_resume_equals_one_uninterrupted_run(trained, tmp_path):
    once, cut = _copy(trained, tmp_path / "once"), _copy(trained, tmp_path / "cut")
    run_ok(once, *ATTACK)
    err = run_interrupted(cut, *ATTACK, env={INTERRUPT_ENV: "4"})  # 4 of the train split's 6 batches
    partials = sorted(cut.adv_dir.glob("*.partial*"))
    assert partials and not list(cut.adv_dir.glob("*-train.h5")), err
    with h5py.File(partial_adv_path(cut.adv_dir / "pgd-eps8_255-s2-trand-baseline-train.h5"), "r") as handle:
        assert int(handle.attrs["done"]) == 8  # stopped in the middle of the first split
    out = run_ok(cut, *ATTACK, "--resume", "--json")
    assert [r["status"] for r in json.loads(out)] == ["resumed", "resumed", "written", "written"]

    names = sorted(p.name for p in once.adv_dir.glob("*.h5"))
    assert len(names) == 4 and names == sorted(p.name for p in cut.adv_dir.glob("*.h5"))
    for name in names:
        data_a, attrs_a = _set_contents(once.adv_dir / name)
        data_b, attrs_b = _set_contents(cut.adv_dir / name)
        assert data_a.keys() == data_b.keys() and "images" in data_a, name
        for key in data_a:
            assert data_a[key].dtype == data_b[key].dtype and np.array_equal(data_a[key], data_b[key]), (name, key)
        assert attrs_a.keys() == attrs_b.keys(), name
        for key in attrs_a:
            assert np.array_equal(attrs_a[key], attrs_b[key]), (name, key)


def _numbers(ws: Workspace) -> dict:
    """results.json without the creation time and the prediction cache's hit counts, this workspace's
    folder written as WS in every path."""
    results = json.loads((ws.reports_dir / "rep" / "results.json").read_text().replace(str(ws.root), "WS"))
    del results["transfer"]["cache"]
    return {k: v for k, v in results.items() if k != "created"}


@pytest.mark.parametrize("stop_after", [2, 6], ids=["during-transfer", "after-one-adaptive-model"])
def test_evaluate_ctrl_c_then_resume_equals_one_uninterrupted_run(trained, tmp_path, stop_after):
    """Saved units in order: 2 models x (clean + 1 set) predictions, then per model the suite's record
    chunk (3 images, one chunk at the one eps) and the model's adaptive result."""
    once, cut = _copy(trained, tmp_path / "once"), _copy(trained, tmp_path / "cut")
    for ws in (once, cut):
        run_ok(ws, "attack", "fgsm", "--eps", "8/255", "--device", "cpu", "--batch-size", "4")
    run_ok(once, *EVALUATE)
    assert not (once.reports_dir / "rep" / ".partial").exists()  # removed once the report is written

    run_interrupted(cut, *EVALUATE, env={INTERRUPT_ENV: str(stop_after)})
    assert not (cut.reports_dir / "rep" / "results.json").exists()
    saved = list((cut.reports_dir / "rep" / ".partial").glob("adaptive-*.json"))
    assert len(saved) == (1 if stop_after == 6 else 0)
    resumed = defendr(cut, *EVALUATE, "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert ("adaptive result of the interrupted run reused" in err) == (stop_after == 6), err
    assert ("2 computed, 2 from cache" if stop_after == 2 else "0 computed, 4 from cache") in out
    assert _numbers(once) == _numbers(cut)
    assert len(_numbers(cut)["adaptive"]["models"]) == 2


def test_resume_ignores_an_adaptive_result_saved_with_other_settings(trained, tmp_path):
    ws = _copy(trained, tmp_path / "ws")
    run_interrupted(ws, *EVALUATE, env={INTERRUPT_ENV: "4"})  # 2 predictions, the first model's record chunk and result
    (saved,) = (ws.reports_dir / "rep" / ".partial").glob("adaptive-*.json")
    payload = json.loads(saved.read_text())
    payload["row"]["clean"] = 7.0  # would show in results.json if it were reused
    saved.write_text(json.dumps(payload))
    changed = [*EVALUATE[:EVALUATE.index("--subset")], "--subset", "4", *EVALUATE[EVALUATE.index("--subset") + 2:]]
    run_ok(ws, *changed, "--resume")
    results = json.loads((ws.reports_dir / "rep" / "results.json").read_text())
    assert all(m["clean"] <= 1.0 for m in results["adaptive"]["models"])


def test_second_evaluate_of_the_same_report_stops_at_once_naming_the_first(trained, tmp_path):
    ws = _copy(trained, tmp_path / "ws")
    slow = ["evaluate", "--model", "baseline", "--adv", "none", "--adaptive", "--attacks", "pgd", "--steps", "100000", "--restarts", "1",
            "--subset", "2", "--device", "cpu", "--name", "busy"]
    first = defendr(ws, *slow)
    try:
        wait_until_locked(first, ws.reports_dir / "busy")
        assert_refused_naming(defendr(ws, *slow), first)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
