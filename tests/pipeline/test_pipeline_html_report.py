"""reproduce's report.html: the command that makes the report again names every changed setting."""

from __future__ import annotations

import shlex

from defendr_cli.core.pipeline.html_report import profile_overrides, reproduce_command, write_reproduce_html
from defendr_cli.core.pipeline.profile import load_profile, resolve_settings
from defendr_cli.core.workspace import Workspace


def test_the_command_gives_back_the_same_settings(tmp_path):
    overrides = ["data.per_class=40", "data.split=30,4,6", "train.epochs=1", "evaluate.eps=[\"8/255\",\"4/255\"]",
                 "gradcam.model=true"]
    settings = resolve_settings("quick", overrides)
    settings.update(device="cpu", precision="fp32")
    command = reproduce_command(Workspace(tmp_path / "w"), settings)
    words = shlex.split(command)
    assert words[:6] == ["defendr", "--workdir", str(tmp_path / "w"), "reproduce", "--profile", "quick"]
    assert words[words.index("--device") + 1] == "cpu" and words[words.index("--precision") + 1] == "fp32"
    again = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
    assert resolve_settings("quick", again) == resolve_settings("quick", overrides)
    assert sorted(again) == sorted(profile_overrides(settings)) and len(again) == 5
    assert profile_overrides({**load_profile("quick"), "profile": "quick"}) == []


def test_no_page_before_the_report_exists(tmp_path):
    assert write_reproduce_html(Workspace(tmp_path), resolve_settings("quick", []), tmp_path / "reports" / "r") is None
