"""core.stages.gradcam.run_gradcam: paired Grad-CAM grids of one model on one adversarial set."""

from __future__ import annotations

import json

import pytest

from defendr_cli.core.errors import InputError
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.stages.gradcam import GradcamConfig, run_gradcam

CPU = Runtime()


def test_grids_in_the_default_report_folder(stage_ws):
    result = run_gradcam(stage_ws, GradcamConfig(model="baseline", attack="pgd-eps32_255", count=3), CPU)
    assert result.folder == stage_ws.reports_dir / "gradcam-baseline-pgd-eps32_255-s5-baseline-test"
    assert result.model == "baseline" and result.adv_set == "pgd-eps32_255-s5-baseline-test"
    assert result.count == 3 and [t.label for t in result.targets] == ["baseline"]
    assert (result.folder / result.targets[0].figure).exists()
    assert all(path.exists() for path in result.files)
    assert json.loads((result.folder / "gradcam.json").read_text())["count"] == 3
    assert result.to_dict()["folder"] == str(result.folder)
    page = (result.folder / "report.html").read_text()  # the folder's page, its grid inlined
    assert result.folder / "report.html" in result.files and "Grad-CAM baseline" in page
    assert "data:image/png;base64," in page and "gradcam --model baseline --attack pgd-eps32_255-s5" in page


def test_explicit_folder_and_ambiguous_prefix(stage_ws, tmp_path):
    result = run_gradcam(stage_ws, GradcamConfig(model="baseline", attack="fgsm-eps8_255-baseline-test", count=2,
                                                 folder=tmp_path / "cams"), CPU)
    assert result.folder == tmp_path / "cams" and (tmp_path / "cams" / "gradcam.json").exists()
    with pytest.raises(InputError, match="matches several"):
        run_gradcam(stage_ws, GradcamConfig(model="baseline", attack="", count=2), CPU)
