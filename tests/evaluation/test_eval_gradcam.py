"""Grad-CAM on a hand-built toy model with a planted discriminative region; hooks; paired grids."""

from __future__ import annotations

import json

import torch
from PIL import Image
from torch import nn

from defendr_cli.core.evaluation.subjects import load_eval_model
from defendr_cli.core.explain.gradcam import GradCAM, explain_targets
from defendr_cli.core.explain.paired import choose_rows, gradcam_pairs
from defendr_cli.core.models.denoised import DenoisedClassifier
from defendr_cli.core.models.ensemble import Ensemble
from defendr_cli.core.models.randomization import RandomResizePad
from defendr_cli.core.runtime import Runtime


class RednessToy(nn.Module):
    """Class 1 = 'there is red': channel 0 of the stage is R - G, pooled; class 0 is its negative."""

    def __init__(self) -> None:
        super().__init__()
        self.last_conv_stage = nn.Conv2d(3, 2, 1)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.last_conv_stage.weight.zero_()
            self.last_conv_stage.bias.zero_()
            self.last_conv_stage.weight[0, 0] = 1.0
            self.last_conv_stage.weight[0, 1] = -1.0
            self.fc.weight.copy_(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(torch.relu(self.last_conv_stage(x)).mean(dim=(2, 3)))


def _planted(n=3):
    x = torch.full((n, 3, 16, 16), 0.5)
    x[:, 0, 4:8, 10:14] = 1.0
    x[:, 1, 4:8, 10:14] = 0.0
    return x


def test_map_peaks_at_the_planted_region_and_lies_in_unit_range():
    toy = RednessToy()
    with GradCAM(toy, toy.last_conv_stage) as cam:
        maps, preds = cam(_planted())
    assert preds.tolist() == [1, 1, 1]
    assert maps.shape == (3, 16, 16) and maps.min() >= 0 and maps.max() <= 1
    assert maps[0].std() > 0  # not constant
    peak = divmod(int(maps[0].argmax()), 16)
    assert 4 <= peak[0] < 8 and 10 <= peak[1] < 14
    assert maps[0, 4:8, 10:14].mean() > 5 * maps[0, 12:, :6].mean()


def test_hooks_are_released_and_no_graph_is_kept():
    toy = RednessToy()
    layer = toy.last_conv_stage
    with GradCAM(toy, layer) as cam:
        assert len(layer._forward_hooks) == 1
        for _ in range(30):
            maps, _ = cam(_planted(2))
            assert not maps.requires_grad and cam._activation is None
    assert len(layer._forward_hooks) == 0
    assert all(p.grad is None for p in toy.parameters())


def test_explain_targets_by_kind():
    toy = RednessToy()
    denoised = DenoisedClassifier(nn.Identity(), RednessToy())
    [t] = explain_targets(denoised, "dunet")
    assert t.module is denoised and t.layer is denoised.classifier.last_conv_stage  # through the denoiser
    [r] = explain_targets(RandomResizePad(toy, 16), "rand")
    assert r.module is toy
    members = explain_targets(Ensemble([toy, denoised], names=["a", "b"]), "ens")
    assert [m.label for m in members] == ["ens/a", "ens/b"]


def test_choose_rows_prefers_fooled_images():
    clean_ok = torch.tensor([1, 1, 0, 1, 1], dtype=torch.bool).numpy()
    adv_ok = torch.tensor([0, 1, 0, 0, 1], dtype=torch.bool).numpy()
    rows, fooled = choose_rows(clean_ok, adv_ok, 2, "fooled", seed=0)
    assert fooled == 2 and rows.tolist() == [0, 3]
    rows, _ = choose_rows(clean_ok, adv_ok, 3, "fooled", seed=0)
    assert set(rows.tolist()) >= {0, 3}


def test_gradcam_pairs_writes_grids(eval_ws, tmp_path):
    model = load_eval_model(eval_ws, "baseline", device=torch.device("cpu"))
    out = tmp_path / "gc"
    result = gradcam_pairs(model, eval_ws.path_for("data", "synth"),
                           eval_ws.path_for("adv", "pgd-eps32_255-s5-baseline-test"), out, runtime=Runtime(), count=4)
    assert result.count == 4 and result.fooled_available >= 4
    png = out / result.figures[0]
    assert Image.open(png).size[0] > 100
    assert json.loads((out / "gradcam.json").read_text())["model"] == "baseline"
    # correct-then-fooled: every chosen clean image is classified right and its copy wrongly
    target = result.targets[0]
    assert target.clean_pred == result.true and all(a != t for a, t in zip(target.adv_pred, result.true))
