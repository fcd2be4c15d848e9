"""Adding an attack is one function and one AttackSpec: a toy attack registered here alone runs
through the attack stage and the CLI with its own option, name suffix and attributes, its option's
declared range is checked at the CLI, and being gradient-free it counts as a black-box attack in
the adaptive evaluation's masking check."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from defendr_cli.cli.app import app
from defendr_cli.core.attacks import ATTACKS, AttackResult, AttackSpec, register_attack, unregister_attack
from defendr_cli.core.attacks.base import attack_context, check_inputs
from defendr_cli.core.attacks.eps import parse_eps_list
from defendr_cli.core.attacks.geometry import as_channel_tensor
from defendr_cli.core.errors import InputError
from defendr_cli.core.evaluation.adaptive.eps import AdaptiveEps
from defendr_cli.core.evaluation.adaptive.plan import SuitePlan
from defendr_cli.core.evaluation.adaptive.run import AdaptiveConfig, run_adaptive_suite
from defendr_cli.core.evaluation.report.adaptive_tables import suite_table
from defendr_cli.core.evaluation.subjects import load_eval_model
from defendr_cli.core.io.adversarial import AdvSetReader, read_adv_info
from defendr_cli.core.io.reader import SplitReader
from defendr_cli.core.ranges import Range
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.stages.attack import AttackStageConfig, run_attack
from tests.attacks.attack_helpers import make_cache, make_checkpoint


def random_sign(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps, scale: float = 1.0, *,
                targeted=False, targets=None, label_mode="true", loss="ce", generator=None, runtime=None,
                eval_mode=True, check_success=True) -> AttackResult:
    """One step of `scale * eps` in a uniformly random sign direction (no gradient)."""
    check_inputs(images, labels)
    with attack_context(model, runtime, loss=loss, eval_mode=eval_mode) as ctx:
        clean, goal = ctx.start(images, labels, targeted=targeted, targets=targets, label_mode=label_mode,
                                generator=generator)
        draw = torch.rand(clean.shape, generator=generator, device=generator.device if generator else clean.device)
        direction = torch.where(draw.to(clean.device) < 0.5, -1.0, 1.0)
        adv = torch.clamp(clean + scale * as_channel_tensor(eps, clean) * direction, 0.0, 1.0)
        return ctx.result(adv, goal) if check_success else ctx.unchecked(adv, goal)


@pytest.fixture
def toy_attack():
    spec = register_attack(AttackSpec("randsign", random_sign, aliases=("random-sign",), stochastic=True,
                                      gradient_free=True, report_label="RandSign",
                                      option_ranges={"scale": Range(0.0, 1.0, low_open=True)}))
    try:
        yield spec
    finally:
        unregister_attack("randsign")
    assert "randsign" not in ATTACKS


@pytest.fixture
def ws(workspace):
    make_cache(workspace)
    make_checkpoint(workspace)
    return workspace


def test_toy_attack_runs_through_the_stage(toy_attack, ws):
    config = AttackStageConfig(attack="random-sign", eps=parse_eps_list("0.02,0.04"), options={"scale": "0.5"},
                               batch_size=8, preview=False)
    results = run_attack(ws, config, Runtime())
    assert [r.name for r in results] == ["randsign-eps0.02-scale0.5-baseline-test",
                                         "randsign-eps0.04-scale0.5-baseline-test"]
    with SplitReader(ws.path_for("data", "tiny"), "test") as clean:
        clean_images = clean.read(np.arange(len(clean)))
    for result, eps in zip(results, (0.02, 0.04)):
        info = read_adv_info(result.path)
        assert info.attack == "randsign" and info.extra["scale"] == 0.5 and info.steps is None
        assert info.step_size is None and info.summary.startswith("adversarial set: randsign eps")
        with AdvSetReader(result.path) as adv:
            moved = (adv.read(np.arange(len(adv))) - clean_images).abs()
        assert (moved <= 0.5 * eps + 1e-3).all() and moved.max() > 0.25 * eps
    # the same stream for every eps: the directions agree wherever neither image was clipped
    with AdvSetReader(results[0].path) as a, AdvSetReader(results[1].path) as b:
        da = a.read(np.arange(len(a))) - clean_images
        db = b.read(np.arange(len(b))) - clean_images
    inside = (clean_images > 0.05) & (clean_images < 0.95)
    assert torch.equal(da[inside].sign(), db[inside].sign())


def test_toy_attack_options_are_checked_against_its_signature(toy_attack, ws):
    base = dict(attack="randsign", eps=parse_eps_list("0.02"), batch_size=8, preview=False)
    with pytest.raises(InputError, match=r"randsign does not take --steps \(it takes scale\)"):
        run_attack(ws, AttackStageConfig(steps=3, **base), Runtime())
    with pytest.raises(InputError, match="option scale of randsign takes a value of type float"):
        run_attack(ws, AttackStageConfig(options={"scale": "big"}, **base), Runtime())
    (default,) = run_attack(ws, AttackStageConfig(**base), Runtime())
    assert default.name == "randsign-eps0.02-baseline-test" and "scale" not in read_adv_info(default.path).extra


def test_toy_attack_through_the_cli(toy_attack, ws):
    args = ["--workdir", str(ws.root), "attack", "randsign", "--eps", "0.03", "-o", "scale=0.25",
            "--batch-size", "16", "--device", "cpu", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["name"] == "randsign-eps0.03-scale0.25-baseline-test" and row["count"] == 30


def test_toy_attack_option_range_is_checked_at_the_cli(toy_attack, ws):
    args = ["--workdir", str(ws.root), "attack", "randsign", "--eps", "0.03", "-o", "scale=2", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "option scale of randsign must be a finite number > 0 and <= 1, got 2.0" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not list(ws.adv_dir.glob("randsign-*.h5"))


def test_toy_attack_counts_as_black_box_in_the_masking_check(toy_attack, ws):
    model = load_eval_model(ws, "baseline", device=torch.device("cpu"))
    config = AdaptiveConfig(eps_values=[AdaptiveEps("0.5", 0.5)], plan=SuitePlan(suite="custom", attacks=("randsign",)),
                            subset=None, batch_size=16)
    adaptive = run_adaptive_suite([model], ws.path_for("data", "tiny"), config, runtime=Runtime())
    (row,) = adaptive.models
    assert row.clean > row.point("0.5").robust  # the random signs broke some clean-correct images
    check = next(c for c in row.checks if c.name == "black-box-beats-white-box")
    # no gradient attack ran, so every image randsign broke is one a black-box attack won
    assert check.status == "fail" and "broken by randsign" in check.detail
    assert "RandSign" in suite_table(adaptive).columns
