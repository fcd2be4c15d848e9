"""Gradient-masking checks (core.evaluation.checks): each passes and fails on constructed inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from defendr_cli.core.errors import InputError
from defendr_cli.core.evaluation import checks as M
from defendr_cli.core.evaluation.adaptive.cascade import run_suite
from tests.evaluation.suite_fakes import NoisyModel, PixelModel, make_images, recording


class Softmaxed(nn.Module):
    def __init__(self, base: nn.Module, log: bool = False) -> None:
        super().__init__()
        self.base, self.log = base, log

    def forward(self, x):
        return (F.log_softmax if self.log else F.softmax)(self.base(x), dim=1)


class StepModel(nn.Module):
    """Logits of thresholded pixels: piecewise constant, so the input gradient is exactly zero."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(48, 10)

    def forward(self, x):
        return self.linear((x.flatten(1) > 0.5).float())


def _images(n: int = 8) -> torch.Tensor:
    return make_images([i % 10 for i in range(n)])


def test_check_status_is_validated():
    with pytest.raises(InputError):
        M.Check("x", "ok", 0.0, "")


def test_randomized_model_is_flagged_unless_evaluated_with_rand():
    assert M.check_randomized(PixelModel(), _images()).status == "pass"
    noisy = NoisyModel(stable=0)
    flagged = M.check_randomized(noisy, _images(), passes=5)
    assert flagged.status == "warn" and flagged.value > 0
    assert M.check_randomized(noisy, _images(), suite="rand").status == "pass"


def test_probability_outputs_fail_log_probabilities_warn_logits_pass():
    x = _images()
    assert M.check_output_scores(M.output_scores(PixelModel(), x)).status == "pass"
    assert M.check_output_scores(M.output_scores(Softmaxed(PixelModel()), x)).status == "fail"
    assert M.check_output_scores(M.output_scores(Softmaxed(PixelModel(), log=True), x)).status == "warn"


def test_zero_gradient_share():
    torch.manual_seed(0)
    x, y = torch.rand(10, 3, 4, 4), torch.arange(10)
    smooth = nn.Sequential(nn.Flatten(), nn.Linear(48, 10))
    passed = M.check_zero_gradients(M.input_gradients(smooth, x, y))
    assert passed.status == "pass" and passed.value == 0
    failed = M.check_zero_gradients(M.input_gradients(StepModel(), x, y))
    assert failed.status == "fail" and failed.value == 1.0
    grads = torch.ones(100, 3, 4, 4)
    grads[:3] = 0
    warned = M.check_zero_gradients(grads)
    assert warned.status == "warn" and warned.value == pytest.approx(0.03)


def test_black_box_success_where_white_box_failed():
    held = torch.tensor([True] * 10 + [False] * 90)
    same = M.check_black_box_beats_white_box(held, {"square": held.clone()})
    assert same.status == "pass" and same.value == 0
    square = held.clone()
    square[:5] = False
    failed = M.check_black_box_beats_white_box(held, {"square": square, "fgsm-eps8_255": held})
    assert failed.status == "fail" and failed.value == pytest.approx(0.05) and "square" in failed.detail
    square = held.clone()
    square[0] = False
    assert M.check_black_box_beats_white_box(held, {"square": square}).status == "warn"
    assert M.check_black_box_beats_white_box(held, {}).status == "pass"


def test_black_box_check_from_a_suite():
    classes = list(range(10))
    white, _ = recording("apgd-ce", {0, 1})
    square, _ = recording("square", {2})
    result = run_suite(PixelModel(), make_images(classes), torch.tensor(classes), [white, square])
    masks = M.suite_held_masks(result, ["square"])
    assert masks.white_box.tolist() == [False, False] + [True] * 8
    assert M.check_black_box_beats_white_box(masks.white_box, masks.black_box).status == "fail"
    clean_run = run_suite(PixelModel(), make_images(classes), torch.tensor(classes),
                          [recording("apgd-ce", {0, 1, 2})[0], recording("square", set())[0]])
    masks = M.suite_held_masks(clean_run, ["square"])
    assert M.check_black_box_beats_white_box(masks.white_box, masks.black_box).status == "pass"


def test_accuracy_must_not_rise_with_the_budget():
    assert M.check_monotone("eps", [(0.0, 0.9), (4 / 255, 0.5), (8 / 255, 0.2)]).status == "pass"
    rising = M.check_monotone("steps", [(20, 0.3), (10, 0.2), (50, 0.25)])
    assert rising.status == "fail" and rising.value == pytest.approx(0.1) and rising.name == "monotone-in-steps"
    assert M.check_monotone("queries", [(100, 0.2), (300, 0.21)], tolerance=0.02).status == "pass"


def test_eps_zero_must_equal_clean():
    assert M.check_eps_zero(0.9, 0.9).status == "pass"
    assert M.check_eps_zero(0.9, 0.85).status == "fail"


def test_eps_zero_compares_image_counts_not_float_widths():
    # the quick reproduce's false alarm: 99 of 100 correct, as float64 (numpy) and float32 (torch)
    clean, eps0 = 99 / 100, float(torch.tensor(99 / 100, dtype=torch.float32))
    assert clean != eps0 and M.check_eps_zero(clean, eps0).status == "fail"
    assert M.check_eps_zero(clean, eps0, count=100).status == "pass"
    assert M.check_eps_zero(clean, 98 / 100, count=100).status == "fail"  # one image changed still fails
    assert M.check_eps_zero(0.9, 0.88, tolerance=0.03).status == "pass"


def test_large_eps_must_reach_about_zero():
    assert M.check_large_eps(0.0).status == "pass"
    assert M.check_large_eps(0.3).status == "warn"
    assert M.check_large_eps(0.8).status == "fail"
