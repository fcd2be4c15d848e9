"""End to end: `defendr reproduce` on a reduced quick profile, then idempotence and selective reruns."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from defendr_cli.cli.app import app

REDUCED = [
    "data.classes=4", "data.per_class=40", "data.split=30,4,6", "data.image_size=16",
    "train.epochs=2", "train.batch_size=32",
    "methods.dunet.epochs=1", "methods.dunet.width_mult=0.125",
    "attacks=[{\"attack\": \"fgsm\", \"eps\": \"8/255\"}, {\"attack\": \"pgd\", \"eps\": \"8/255\", \"steps\": 3}]",
    "extra_test_attacks=[]",
    "methods.advpgd.adv=[\"pgd-eps8_255-s3\"]", "methods.alp.adv=[\"pgd-eps8_255-s3\"]",
    "methods.dunet.adv=[\"fgsm-eps8_255\"]",
    "methods.madry.epochs=1", "methods.madry.attack_steps=2",
    "evaluate.subset=12", "evaluate.steps=[2,3]", "evaluate.eot=2", "evaluate.batch_size=64",
    "evaluate.square_queries=10", "evaluate.draws=2",
    "gradcam.count=2",
]


def _run(workdir, *extra):
    args = ["--workdir", str(workdir), "reproduce", "--device", "cpu", "--json"]
    for item in REDUCED + list(extra):
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output[result.output.index("{"):])


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reproduce")
    return workdir, _run(workdir)


def test_every_stage_runs_and_the_report_has_the_papers_tables(first_run):
    workdir, out = first_run
    ids = [s["id"] for s in out["stages"]]
    assert ids[0] == "prepare" and ids[1] == "train:baseline" and ids[-1] == "evaluate"
    assert {"train:adv", "train:alp", "train:clp", "train:lsq", "train:dunet", "ensemble:dunet-alp-clp",
            "gradcam"} <= set(ids)
    assert all(s["status"] == "ran" for s in out["stages"])
    report = workdir / "reports" / "reproduce"
    text = (report / "report.md").read_text()
    for heading in ("Table 1.", "Table 2.", "Table 3.", "Table 4.", "Table 5.", "Table 6.",
                    "Our numbers beside the paper's", "Phenomena checks", "Grad-CAM", "## Settings"):
        assert heading in text, heading
    results = json.loads((report / "results.json").read_text())
    names = {m["name"] for m in results["transfer"]["models"]}
    assert {"baseline", "dunet", "baseline+random-resize-pad", "dunet-alp-clp"} <= names
    assert results["adaptive"]["models"], "the adaptive protocol ran"
    assert {p["name"] for p in out["phenomena"]} >= {"baseline clean accuracy", "adversarial training gain"}
    assert results["settings"]["data"]["classes"] == 4  # the resolved settings are in the report


def test_quick_profile_has_the_robust_control_and_the_suite_columns(first_run):
    workdir, out = first_run
    ids = [s["id"] for s in out["stages"]]
    assert "train:madry" in ids
    results = json.loads((workdir / "reports" / "reproduce" / "results.json").read_text())
    adaptive = {m["name"]: m for m in results["adaptive"]["models"]}
    assert "madry" in adaptive and results["adaptive"]["settings"]["suite"]["name"] == "quick"
    assert set(adaptive["madry"]["attacks"]) == {"pgd", "apgd-ce", "apgd-t", "square"}
    assert adaptive["dunet-alp-clp"]["route"], "the ensemble was also attacked through its members' losses"
    assert {c["name"] for c in adaptive["madry"]["checks"]} >= {"zero-gradients", "black-box-beats-white-box"}
    control = [p for p in out["phenomena"] if p["name"] == "robust control madry holds"]
    assert len(control) == 1 and control[0]["value"] is not None and control[0]["threshold"] == 0.25
    text = (workdir / "reports" / "reproduce" / "report.md").read_text()
    assert "Adaptive evaluation: attack suite" in text and "APGD-T" in text


def test_report_has_the_stage_time_table_and_the_machines_calibration(first_run):
    workdir, out = first_run
    report = workdir / "reports" / "reproduce"
    timing = json.loads((report / "results.json").read_text())["timing"]
    assert [row["id"] for row in timing["stages"]] == [s["id"] for s in out["stages"]]
    assert all(row["status"] == "ran" and row["seconds"] >= 0 and 0 <= row["share"] <= 1 for row in timing["stages"])
    assert sum(row["share"] for row in timing["stages"]) <= 1.0 + 1e-3
    calibration = timing["calibration"]
    assert calibration == out["calibration"]
    for block in ("matmul", "conv"):
        assert calibration[block]["fp32_gflops"] > 0 and calibration[block]["bf16_gflops"] > 0
    text = (report / "report.md").read_text()
    section = text[text.index("## Stage times"):text.index("## Settings")]
    assert "| train:dunet | ran |" in section and "| evaluate | ran |" in section
    assert "matmul fp32" in section and "GFLOP/s" in section


def test_report_html_shows_the_checks_the_timing_and_the_command(first_run):
    workdir, _ = first_run
    page = (workdir / "reports" / "reproduce" / "report.html").read_text()
    for anchor in ("summary", "phenomena", "paper-tables", "adaptive", "plots", "gallery", "gradcam", "per-class",
                   "provenance"):
        assert f'<section id="{anchor}">' in page, anchor
    assert "Stage times" in page and "matmul fp32" in page
    assert f"defendr --workdir {workdir} reproduce --profile quick --device cpu" in page
    assert "--set data.classes=4" in page and "--set gradcam.count=2" in page


def test_second_run_skips_everything_and_a_changed_setting_reruns_only_its_dependents(first_run):
    workdir, _ = first_run
    again = _run(workdir)
    assert all(s["status"] == "current" for s in again["stages"])
    changed = _run(workdir, "methods.lsq.squeeze_weight=0.1")
    ran = {s["id"] for s in changed["stages"] if s["status"] == "ran"}
    assert ran == {"train:lsq", "evaluate"}


def test_unknown_setting_is_one_line_error(tmp_path):
    result = CliRunner().invoke(app, ["--workdir", str(tmp_path), "reproduce", "--set", "trian.epochs=1"])
    assert result.exit_code == 1
    assert "unknown setting 'trian'" in result.output


@pytest.mark.parametrize(("override", "says"), [("train.epochs=abc", "train.epochs needs a whole number"),
                                               ("train.epochs=0", "--epochs must be at least 1"),
                                               ("methods.lsq.squeeze_weight=[1]", "squeeze_weight needs a number")])
def test_unusable_setting_fails_in_one_line_before_any_stage_runs(tmp_path, override, says):
    result = CliRunner().invoke(app, ["--workdir", str(tmp_path), "reproduce", "--set", override])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and says in lines[0], result.output
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_interrupted_run_finishes_with_resume(tmp_path, monkeypatch):
    """Ctrl-C in the middle of the pipeline, then `--resume`: finished stages are kept, the rest run."""
    from defendr_cli.core.pipeline import stages
    from defendr_cli.core.pipeline.profile import resolve_settings
    from defendr_cli.core.pipeline.reproduce import reproduce
    from defendr_cli.core.runtime import Runtime
    from defendr_cli.core.workspace import Workspace

    settings = resolve_settings("quick", REDUCED, device="cpu")
    workspace, runtime = Workspace(tmp_path / "ws"), Runtime.create("cpu", "fp32")
    real_train = stages.pipeline_train

    def interrupted(env, name, spec):
        if name == "clp":
            raise KeyboardInterrupt
        return real_train(env, name, spec)

    monkeypatch.setattr(stages, "pipeline_train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        reproduce(workspace, settings, runtime)
    assert not (workspace.reports_dir / "reproduce" / "report.md").exists()

    monkeypatch.setattr(stages, "pipeline_train", real_train)
    result = reproduce(workspace, settings, runtime, resume=True)
    status = {record.id: record.status for record in result.stages}
    assert status["train:baseline"] == status["train:alp"] == "current"
    assert status["train:clp"] == status["evaluate"] == "ran"
    assert (result.report_dir / "report.md").exists()
