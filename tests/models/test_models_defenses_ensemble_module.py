"""Ensemble math against hand computations (paper §4.4) and logit averaging."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from defendr_cli.core.errors import InputError
from defendr_cli.core.models.ensemble import Ensemble


class _Fixed(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1) + 0 * x.sum()


def test_probability_sum_matches_hand_computation():
    # member A: confident in class 0; members B, C: mildly prefer class 1.
    a, b, c = [4.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.5, 0.0]
    ens = Ensemble([_Fixed(a), _Fixed(b), _Fixed(c)])
    out = ens(torch.zeros(1, 3, 2, 2))
    softmax = lambda v: torch.tensor(v).exp() / torch.tensor(v).exp().sum()  # noqa: E731
    expected = (softmax(a) + softmax(b) + softmax(c)) / 3
    assert torch.allclose(out.exp()[0], expected, atol=1e-6)
    # softmax(a) = [.965, .018, .018]; softmax(b) = [.274, .452, .274]: sum [1.51, .92, .57] -> 0
    assert out.argmax(1).item() == 0
    # logit averaging: mean = [1.333, .333, 0] -> class 0 too, but values are the mean logits
    ens_logits = Ensemble([_Fixed(a), _Fixed(b), _Fixed(c)], combine="logits")
    assert torch.allclose(ens_logits(torch.zeros(1, 3, 2, 2))[0], torch.tensor([4 / 3, 1 / 3, 0.0]))


def test_weights_change_the_vote():
    a, b = [2.0, 0.0], [0.0, 3.0]
    x = torch.zeros(1, 3, 2, 2)
    assert Ensemble([_Fixed(a), _Fixed(b)])(x).argmax().item() == 1
    weighted = Ensemble([_Fixed(a), _Fixed(b)], weights=[3, 1])(x)
    pa, pb = torch.tensor(a).softmax(0), torch.tensor(b).softmax(0)
    assert torch.allclose(weighted.exp()[0], 0.75 * pa + 0.25 * pb, atol=1e-6)
    assert weighted.argmax().item() == 0


def test_gradients_flow_to_the_input():
    members = [nn.Sequential(nn.Flatten(), nn.Linear(12, 4)) for _ in range(2)]
    x = torch.rand(2, 3, 2, 2, requires_grad=True)
    Ensemble(members)(x)[:, 0].sum().backward()
    assert x.grad.abs().sum() > 0


def test_bad_arguments():
    with pytest.raises(InputError):
        Ensemble([_Fixed([0.0])], combine="vote")
    with pytest.raises(InputError):
        Ensemble([_Fixed([0.0]), _Fixed([0.0])], weights=[1.0])
    with pytest.raises(InputError):
        Ensemble([_Fixed([0.0])], weights=[-1.0])
    with pytest.raises(InputError):
        Ensemble([])
