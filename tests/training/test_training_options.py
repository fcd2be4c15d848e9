"""TrainOptions: defaults per image size, validation, plain-value round trip."""

from __future__ import annotations

import io

import pytest
import torch

from defendr_cli.core.errors import InputError
from defendr_cli.core.training.options import TrainOptions


def test_defaults_follow_the_paper_for_large_images_and_the_quick_profile_for_small():
    paper = TrainOptions(method="alp").resolved(299)
    assert (paper.arch, paper.epochs, paper.batch_size, paper.lr, paper.optimizer) == ("resnet101", 15, 128, 1e-3, "adam")
    assert paper.name == "alp"
    quick = TrainOptions().resolved(32)
    assert (quick.arch, quick.epochs, quick.batch_size) == ("tinyresnet", 8, 64)
    assert TrainOptions(pretrained="imagenet").resolved(32).arch == "resnet101"
    given = TrainOptions(arch="resnet18", epochs=2, batch_size=8, name="r").resolved(32)
    assert (given.arch, given.epochs, given.batch_size, given.name) == ("resnet18", 2, 8, "r")


@pytest.mark.parametrize("field, value, flag", [
    ("optimizer", "rmsprop", "--optimizer"), ("schedule", "linear", "--schedule"), ("guide", "x", "--guide"),
    ("eps_space", "logit", "--eps-space"), ("epochs", 0, "--epochs"), ("lr", 0.0, "--lr"),
    ("adv_ratio", 1.5, "--adv-ratio"), ("attack_steps", 0, "--attack-steps"), ("name", "../x", "--name"),
    ("defense", "jpeg", "--defense"),
])
def test_bad_values_name_their_flag(field, value, flag):
    with pytest.raises(InputError, match=flag):
        TrainOptions(**{field: value}).validate()


def test_round_trip_through_a_weights_only_file():
    options = TrainOptions(method="adv", adv=["fgsm-eps0.12"], eps="8/255", passes=3)
    buffer = io.BytesIO()
    torch.save({"options": options.to_dict()}, buffer)
    buffer.seek(0)
    restored = TrainOptions.from_dict(torch.load(buffer, weights_only=True)["options"])
    assert restored == options
