"""`--online fgsm-rs`: fast adversarial training's attack (Wong, Rice & Kolter 2020), and the warning
for freezing the backbone of a randomly initialised network."""

from __future__ import annotations

import torch

from defendr_cli.core.progress import NullReporter
from defendr_cli.core.runtime import Runtime, seed_everything
from defendr_cli.core.training.loop import make_context, train
from defendr_cli.core.training.recipes.adversarial_source import FAST_FGSM_STEP, make_online_attack
from defendr_cli.core.training.recipes.registry import train_options


class _Linear(torch.nn.Module):
    """logits = W x: the loss gradient's sign is known, so the attack's step can be checked exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def _attack(workspace, tiny_cache, eps: str = "8/255"):
    options = train_options("adv", {"online": "fgsm-rs", "eps": eps, "arch": "tinycnn"}).method_options
    return make_online_attack(options, make_context(workspace, Runtime(), None))


def test_fast_fgsm_starts_at_random_and_takes_one_step_of_1_25_eps(workspace, tiny_cache):
    seed_everything(0)
    model, eps = _Linear(), 8 / 255
    images = torch.rand(16, 3, 8, 8) * 0.5 + 0.25  # far from the [0, 1] borders
    labels = torch.randint(0, 3, (16,))
    attack = _attack(workspace, tiny_cache)
    torch.manual_seed(1)
    first = attack(model, images, labels)
    torch.manual_seed(2)
    second = attack(model, images, labels)
    delta = first - images
    assert delta.abs().max() <= eps + 1e-6  # projected onto the eps-ball
    assert not torch.equal(first, second)  # the start is random
    # one step of 1.25 eps from a start in [-eps, eps]: where the step does not hit the ball's edge,
    # |delta| < eps, and no pixel stays at the clean value (the step alone is larger than eps)
    assert (delta.abs() > 0).float().mean() > 0.99
    assert FAST_FGSM_STEP == 1.25
    # the step follows the loss gradient's sign: the loss rises
    loss = torch.nn.functional.cross_entropy
    assert loss(model(first), labels) > loss(model(images), labels)


def test_fast_fgsm_adversarial_training_runs_and_learns(workspace, tiny_cache):
    options = train_options("adv", {"online": "fgsm-rs", "eps": "8/255", "adv_ratio": 1.0, "arch": "tinycnn",
                                    "epochs": 3, "batch_size": 12, "lr": 0.02, "name": "fast"})
    result = train(options, make_context(workspace, Runtime(), None))
    losses = [record.train_loss for record in result.history]
    assert losses[-1] < losses[0], losses
    assert "online fgsm-rs" in result.checkpoint.summary


def test_freezing_a_random_backbone_is_a_warning_that_says_what_happens(workspace, tiny_cache):
    reporter = NullReporter()
    options = train_options("baseline", {"arch": "tinyresnet", "epochs": 1, "batch_size": 12,
                                         "freeze_backbone": True, "name": "frozen"})
    train(options, make_context(workspace, Runtime(), None, reporter))
    warnings = [n for n in reporter.notes if n.startswith("warning:")]
    assert len(warnings) == 1
    assert "no pretrained weights" in warnings[0] and "only its last stage and head will train" in warnings[0]


def test_no_warning_without_freezing(workspace, tiny_cache):
    reporter = NullReporter()
    options = train_options("baseline", {"arch": "tinyresnet", "epochs": 1, "batch_size": 12, "name": "free"})
    train(options, make_context(workspace, Runtime(), None, reporter))
    assert not [n for n in reporter.notes if n.startswith("warning:")]
