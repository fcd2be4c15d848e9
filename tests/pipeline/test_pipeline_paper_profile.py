"""The paper profile: every trained model follows `--set train.epochs`, its adaptive budgets are
settings, it has a robust control, and a run without weights says what to do before it starts."""

from __future__ import annotations

from pathlib import Path

import torch

from defendr_cli.core.pipeline import stages
from defendr_cli.core.pipeline.profile import apply_overrides, load_profile
from defendr_cli.core.progress import NullReporter
from defendr_cli.core.runtime import Runtime


def _env(workspace, settings):
    return stages.StageEnv(workspace, Runtime(), settings, NullReporter())


def test_train_epochs_reaches_every_trained_model_of_the_paper_profile(workspace):
    settings = apply_overrides(load_profile("paper"), ["train.epochs=1"])
    env = _env(workspace, settings)
    epochs = {name: stages.train_options(env, name, spec).epochs
              for name, spec in stages.method_specs(settings).items()}
    assert "dunet" in epochs and set(epochs.values()) == {1}, epochs
    assert stages.train_options(env, "baseline", {"method": "baseline"}).epochs == 1


def test_the_paper_profiles_adaptive_budgets_can_be_shrunk_with_set():
    shrunk = apply_overrides(load_profile("paper"), ["evaluate.suite=quick", "evaluate.square_queries=20",
                                                      "evaluate.subset=4", "evaluate.draws=2", "evaluate.eps=[]"])
    assert shrunk["evaluate"]["suite"] == "quick" and shrunk["evaluate"]["square_queries"] == 20
    assert load_profile("paper")["evaluate"]["suite"] == "auto"  # standard, and rand for randomized models


def test_the_paper_profile_has_a_fast_fgsm_robust_control_attacked_adaptively():
    settings = load_profile("paper")
    control = settings["checks"]["robust_control"]["model"]
    spec = settings["methods"][control]
    assert spec["online"] == "fgsm-rs" and spec["method"] == "adv"
    assert control in settings["evaluate"]["adaptive_models"]


def test_preflight_says_in_one_line_where_the_weights_go_and_how_to_run_without(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    notes = stages.preflight_notes(load_profile("paper"))
    weights = [n for n in notes if "ImageNet weights for resnet101" in n]
    assert len(weights) == 1 and "\n" not in weights[0]
    assert str(Path(tmp_path / "hub" / "checkpoints")) in weights[0] and "https://" in weights[0]
    assert "--set model.pretrained=null --set model.freeze_backbone=false" in weights[0]


def test_preflight_warns_about_a_frozen_random_backbone_and_method_epochs():
    settings = apply_overrides(load_profile("paper"), ["model.pretrained=null", "methods.dunet={\"epochs\": 15}",
                                                       "train.epochs=1"])
    notes = stages.preflight_notes(settings)
    assert any(n.startswith("warning: resnet101 has no pretrained weights and its backbone is frozen") for n in notes)
    assert "methods.dunet.epochs=15 overrides train.epochs=1 for dunet (change it with --set " \
           "methods.dunet.epochs=...)" in notes
    # the quick profile's robust control trains 16 epochs (docs/verdict-spread.md), and says so: a user who
    # shortens the run with --set train.epochs=1 must learn that madry keeps its own budget
    assert stages.preflight_notes(load_profile("quick")) == [
        "methods.madry.epochs=16 overrides train.epochs=8 for madry (change it with --set methods.madry.epochs=...)"]


def _documented_cpu_run() -> list[str]:
    """The --set arguments of docs/paper-profile.md's CPU-sized command."""
    import re
    import shlex

    doc = (Path(__file__).resolve().parents[2] / "docs" / "paper-profile.md").read_text()
    section = doc[doc.index("## A CPU-sized run"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    words = shlex.split(block)
    return [words[i + 1] for i, word in enumerate(words) if word == "--set"]


def test_the_documented_cpu_sized_paper_run_applies_and_attacks_what_the_checks_read():
    overrides = _documented_cpu_run()
    settings = apply_overrides(load_profile("paper"), overrides)
    assert settings["data"]["classes"] == 4 and settings["extra_test_attacks"] == []
    attacked = set(settings["evaluate"]["adaptive_models"])
    checks = settings["checks"]
    # every model a phenomena check reads is attacked adaptively, and the control has defenses to beat
    assert set(checks["adaptive_below_transfer"]) | {checks["robust_control"]["model"]} <= attacked
    assert attacked & set(checks["robust_control"]["defenses"])
    env = _env(None, settings)
    epochs = {name: stages.train_options(env, name, spec).epochs for name, spec in stages.method_specs(settings).items()}
    assert set(epochs.values()) == {1}, epochs
    assert not [n for n in stages.preflight_notes(settings) if n.startswith("warning")]
