"""`defendr reproduce` in real processes: Ctrl-C during a training stage then `reproduce --resume`
gives the results.json of one uninterrupted run, and a second reproduce in the same workspace stops
at once naming the first."""

from __future__ import annotations

import json
import signal

import torch

from defendr_cli.core.io.checkpoint import read_checkpoint
from defendr_cli.core.progress import INTERRUPT_ENV
from defendr_cli.core.training.resume import resume_path
from defendr_cli.core.workspace import Workspace
from tests.reliability.processes import assert_refused_naming, defendr, run_interrupted, run_ok, wait_until_locked

# the pipeline of tests/pipeline/test_pipeline_reproduce_e2e.py cut further: tinycnn, one attack,
# one defense method, no ensembles, a tiny adaptive sweep
SMALL = [
    "data.classes=3", "data.per_class=16", "data.split=10,2,4", "data.image_size=16", "model.arch=tinycnn",
    "train.epochs=2", "train.batch_size=16", "attacks=[{\"attack\": \"fgsm\", \"eps\": \"8/255\"}]",
    "extra_test_attacks=[]", "methods={\"adv\": {\"adv\": [\"fgsm-eps8_255\"]}}", "ensembles={}",
    "randomization.wrap=[\"baseline\"]", "evaluate.subset=6", "evaluate.steps=[2]", "evaluate.eot=2",
    "evaluate.batch_size=64", "evaluate.adaptive_models=[\"baseline\",\"adv\"]", "gradcam.model=adv",
    "gradcam.count=2", "checks.adaptive_below_transfer=[]",
]


def _reproduce(*extra: str, settings: tuple[str, ...] = ()) -> list[str]:
    """The command line; `settings` are applied after SMALL (the last --set of a key wins)."""
    args = ["reproduce", "--device", "cpu", "--json", *extra]
    for item in [*SMALL, *settings]:
        args += ["--set", item]
    return args


def _numbers(ws: Workspace) -> dict:
    """results.json without the creation time, the stage time table and calibration (how long, not
    what was computed), the prediction cache's hit counts and the checkpoint file fingerprints (a
    checkpoint records its epochs' wall-clock seconds; its weights are compared separately), this
    workspace's folder written as WS in every path."""
    results = json.loads((ws.reports_dir / "reproduce" / "results.json").read_text().replace(str(ws.root), "WS"))
    del results["transfer"]["cache"]
    for model in results["transfer"]["models"]:
        del model["fingerprint"]
    return {k: v for k, v in results.items() if k not in ("created", "timing")}


def test_reproduce_ctrl_c_then_resume_equals_one_uninterrupted_run(tmp_path):
    once, cut = Workspace(tmp_path / "once"), Workspace(tmp_path / "cut")
    run_ok(once, *_reproduce())
    # epoch 1 of train:baseline is the first point the hook stops at
    run_interrupted(cut, *_reproduce(), env={INTERRUPT_ENV: "1"})
    assert not (cut.reports_dir / "reproduce" / "results.json").exists()
    assert resume_path(cut, "baseline").exists(), "epoch 1 of the baseline was saved for --resume"
    out = json.loads(run_ok(cut, *_reproduce("--resume")))
    assert all(s["status"] == "ran" for s in out["stages"][1:])
    assert _numbers(once) == _numbers(cut)
    for name in ("baseline", "adv"):
        a = read_checkpoint(once.path_for("model", name)).state_dict
        b = read_checkpoint(cut.path_for("model", name)).state_dict
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert _numbers(cut)["adaptive"]["models"], "the adaptive protocol ran"


def test_second_reproduce_in_the_same_workspace_stops_at_once_naming_the_first(tmp_path):
    ws = Workspace(tmp_path / "ws")
    first = defendr(ws, *_reproduce(settings=("train.epochs=100000",)))
    try:
        wait_until_locked(first, ws.reports_dir / "reproduce")
        assert_refused_naming(defendr(ws, *_reproduce()), first)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
