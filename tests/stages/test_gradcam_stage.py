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
    stored = json.loads((result.folder / "gradcam.json").read_text())
    page_file = result.folder / "report.html"  # the folder's page, written after gradcam.json
    assert result.files[-1] == page_file and stored["files"] == [str(f) for f in result.files[:-1]]
    assert stored == {**result.report(), "files": stored["files"]} and stored["count"] == 3
    assert list(stored) == ["model", "adv_set", "select", "count", "fooled_available", "rows", "true", "targets",
                            "figures", "files"]
    assert list(stored["targets"][0]) == ["label", "figure", "clean_pred", "adv_pred", "mean_abs_difference"]
    assert result.to_dict()["folder"] == str(result.folder)
    page = page_file.read_text()  # its grid inlined
    assert "Grad-CAM baseline" in page
    assert "data:image/png;base64," in page and "gradcam --model baseline --attack pgd-eps32_255-s5" in page


def test_explicit_folder_and_ambiguous_prefix(stage_ws, tmp_path):
    result = run_gradcam(stage_ws, GradcamConfig(model="baseline", attack="fgsm-eps8_255-baseline-test", count=2,
                                                 folder=tmp_path / "cams"), CPU)
    assert result.folder == tmp_path / "cams" and (tmp_path / "cams" / "gradcam.json").exists()
    with pytest.raises(InputError, match="matches several"):
        run_gradcam(stage_ws, GradcamConfig(model="baseline", attack="", count=2), CPU)
