"""`reproduce --plan`: every stage's work, time, disk and memory, without running or writing anything."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from defendr_cli.cli import reproduce as reproduce_cli
from defendr_cli.cli.app import app
from defendr_cli.core.pipeline import plan as plan_module
from defendr_cli.core.pipeline.plan import check_disk, plan_reproduce
from defendr_cli.core.pipeline.profile import resolve_settings
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.workspace import Workspace
from tests.pipeline.test_pipeline_reproduce_e2e import REDUCED

CALIBRATION = {"conv": {"fp32_gflops": 200.0, "bf16_gflops": 400.0}}


def _plan(tmp_path, *extra):
    settings = resolve_settings("quick", REDUCED + list(extra))
    runtime = Runtime.create("cpu", settings["precision"], settings.get("memory_format", "auto"))
    return plan_reproduce(Workspace(tmp_path / "ws"), settings, runtime, CALIBRATION, gpu="H100")


def test_the_plan_lists_every_stage_with_positive_numbers_and_writes_nothing(tmp_path):
    plan = _plan(tmp_path)
    ids = [s.id for s in plan.stages]
    assert ids[0] == "prepare" and ids[1] == "train:baseline" and ids[-1] == "evaluate"
    assert all(s.status == "run" for s in plan.stages)  # a fresh workspace: everything runs
    for stage in plan.stages:
        kind = stage.work.kind
        assert stage.seconds_here > 0 and stage.seconds_gpu > 0 and stage.work.memory_bytes > 0
        if kind in ("train", "attack", "evaluate"):
            assert stage.work.images > 0 and stage.work.passes > 0 and stage.work.flops > 0
        if kind in ("prepare", "attack", "train"):
            assert stage.work.disk_bytes > 0
    assert plan.total_seconds("gpu") < plan.total_seconds("here")
    assert not (tmp_path / "ws").exists() and list(tmp_path.iterdir()) == []


def test_work_and_disk_scale_with_the_images(tmp_path):
    small = {s.id: s.work for s in _plan(tmp_path).stages}
    large = {s.id: s.work for s in _plan(tmp_path, "data.per_class=80", "data.split=60,8,12").stages}
    for stage_id in ("prepare", "attack:fgsm-eps8_255:train,val,test", "train:baseline", "train:alp"):
        assert large[stage_id].images == 2 * small[stage_id].images, stage_id
    assert large["evaluate"].flops > small["evaluate"].flops  # transfer grows; the adaptive subset is fixed
    for stage_id in ("prepare", "attack:fgsm-eps8_255:train,val,test"):
        assert abs(large[stage_id].disk_bytes / small[stage_id].disk_bytes - 2) < 1e-9, stage_id
    for stage_id in ("attack:pgd-eps8_255-s3:train,val,test", "train:baseline", "train:dunet"):
        assert 1.9 < large[stage_id].flops / small[stage_id].flops < 2.1, stage_id


def test_the_paper_profile_shows_tens_of_gigabytes_of_adversarial_sets_and_what_reduces_them(tmp_path):
    settings = resolve_settings("paper", [], source="/nowhere")
    runtime = Runtime.create("cpu", "bf16", "auto")
    plan = plan_reproduce(Workspace(tmp_path / "ws"), settings, runtime, CALIBRATION, gpu="H200")
    adv = sum(s.work.disk_bytes for s in plan.stages if s.work.kind == "attack")
    assert 20e9 < adv < 100e9  # 6 attacks x 14,070 images + 4 x 2,010, 3 x 299 x 299 float16 each
    assert any("adversarial sets alone take" in note for note in plan.notes)
    assert any("to reduce it" in note for note in plan.notes)
    baseline = next(s for s in plan.stages if s.id == "train:baseline")
    assert 20e9 < baseline.work.flops / (baseline.work.images * baseline.work.passes) < 40e9  # ResNet-101 at 299


def test_a_run_that_needs_more_disk_than_is_free_is_refused_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(plan_module, "free_bytes", lambda folder: 1000)
    plan = _plan(tmp_path)
    try:
        check_disk(plan)
    except plan_module.WriteError as exc:
        assert "GB" in str(exc) and "free" in str(exc)
    else:
        raise AssertionError("check_disk accepted a run that does not fit")
    args = ["--workdir", str(tmp_path / "ws"), "reproduce", "--device", "cpu"]
    for item in REDUCED:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "error (write)" in result.output and "free" in result.output
    assert not (tmp_path / "ws" / "data").exists() and not (tmp_path / "ws" / "models").exists()


def test_the_plan_command_prints_json_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce_cli, "cached_calibration", lambda device: CALIBRATION)
    args = ["--workdir", str(tmp_path / "ws"), "reproduce", "--device", "cpu", "--plan", "--gpu", "A100", "--json"]
    for item in REDUCED:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output[result.output.index("{"):])
    assert out["gpu"] == "A100" and out["seconds_here"] > 0 and out["disk_bytes"] > 0
    assert [s["id"] for s in out["stages"]][-1] == "evaluate"
    assert not (tmp_path / "ws").exists()


def test_attack_plan_counts_the_model_and_writes_no_set(tmp_path, monkeypatch):
    from defendr_cli.cli import attack as attack_cli
    from tests.attacks.attack_helpers import make_cache, make_checkpoint

    ws = Workspace(tmp_path)
    make_cache(ws)
    make_checkpoint(ws)
    monkeypatch.setattr(attack_cli, "cached_calibration", lambda device: CALIBRATION)
    args = ["--workdir", str(tmp_path), "attack", "pgd", "--eps", "8/255,4/255", "--steps", "3", "--split",
            "train,test", "--device", "cpu", "--plan", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output[result.output.index("{"):])
    rows = {s["id"]: s for s in out["stages"]}
    assert set(rows) == {"attack:pgd:train", "attack:pgd:test"}
    assert rows["attack:pgd:test"]["passes"] == 2 + 2 * 3  # predictions + forward and input-gradient per step and rows["attack:pgd:test"]["flops"] > 0
    assert all(row["images"] > 0 and row["images"] % 2 == 0 for row in rows.values())  # 2 eps x the split
    assert out["disk_bytes"] > 0 and out["seconds_here"] > 0
    assert not ws.adv_dir.exists() or not any(ws.adv_dir.iterdir())
    monkeypatch.setattr(plan_module, "free_bytes", lambda folder: 1000)
    from defendr_cli.core.pipeline import command_plan

    monkeypatch.setattr(command_plan, "free_bytes", lambda folder: 1000)
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 1 and "error (write)" in refused.output


def test_train_plan_scales_with_epochs_and_writes_no_model(tmp_path, monkeypatch):
    from defendr_cli.cli import train as train_cli
    from tests.attacks.attack_helpers import make_cache

    ws = Workspace(tmp_path)
    make_cache(ws)
    monkeypatch.setattr(train_cli, "cached_calibration", lambda device: CALIBRATION)

    def planned(epochs):
        args = ["--workdir", str(tmp_path), "train", "baseline", "--arch", "tinycnn", "--epochs", str(epochs),
                "--batch-size", "8", "--device", "cpu", "--plan", "--json"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        return json.loads(result.output[result.output.index("{"):])

    one, three = planned(1), planned(3)
    assert [s["id"] for s in one["stages"]] == ["train:baseline"]
    assert one["stages"][0]["flops"] > 0 and one["seconds_here"] > 0 and one["disk_bytes"] > 0
    assert abs(three["stages"][0]["flops"] / one["stages"][0]["flops"] - 3) < 1e-6
    assert not ws.dir_for("model").exists() or not any(ws.dir_for("model").iterdir())


def test_paper_plan_counts_single_step_controls_checkpoint_reads_and_small_batches(tmp_path):
    """fgsm-rs (fast adversarial training) is one gradient step, not the 7-step default; an ensemble
    stage reads its members' checkpoints; no stage holds a batch larger than its images."""
    shrink = ["data.classes=4", "data.per_class=3", "data.split=1,1,1", "model.pretrained=null", "train.epochs=1"]
    settings = resolve_settings("paper", shrink, source="/nowhere")
    plan = plan_reproduce(Workspace(tmp_path / "ws"), settings, Runtime.create("cpu", "fp32", "auto"), CALIBRATION)
    stages = {s.id: s for s in plan.stages}
    fast, pgd = stages["train:fastadv"].work, stages["train:advpgd"].work
    assert fast.passes < 3 + 2 * 2 + 1.5  # step 3 + one forward/input-gradient (2) per adversarial half, val
    ensemble = next(s for s in plan.stages if s.id.startswith("ensemble:"))
    assert ensemble.work.read_bytes > 2 * 100e6  # two or more ResNet-101 checkpoints (170 MB each)
    assert ensemble.seconds_here > plan_module.STAGE_OVERHEAD_S["ensemble"]
    for stage in plan.stages:  # 4 images per split: no attack or training stage holds a batch of 32 or 128
        if stage.work.kind in ("attack", "train"):
            assert stage.work.memory_bytes < 8e9, stage.id
    assert pgd.flops > 0
