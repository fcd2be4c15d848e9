"""Random resize-and-pad: ranges, shapes, pad value, seeded determinism, both variants, gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from defendr_cli.core.errors import InputError
from defendr_cli.core.models.defenses import defense_spec, describe_defense, wrap_defense
from defendr_cli.core.models.randomization import RandomResizePad, resize_range


class _Recorder(nn.Module):
    """A classifier that records what it is fed and returns mean-color logits (3 classes)."""

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return x.mean((2, 3)) * self.scale * 10


def test_ranges_scale_with_image_size():
    assert resize_range(299, "paper") == (299, 331)
    assert resize_range(299, "competition") == (310, 331)
    assert resize_range(32, "paper") == (32, 35)
    assert resize_range(32, "competition") == (33, 35)


@pytest.mark.parametrize("variant", ["paper", "competition"])
def test_output_shapes_ranges_and_padding(variant):
    clf = _Recorder()
    model = RandomResizePad(clf, 32, variant=variant, passes=3, generator=torch.Generator().manual_seed(0))
    x = torch.rand(4, 3, 32, 32) * 0.2  # dark images: the 0.5 padding stands out
    out = model(x)
    assert out.shape == (4, 3)
    assert len(clf.seen) == 3
    lo, hi = resize_range(32, variant)
    for seen in clf.seen:
        assert seen.shape == (4, 3, hi, hi)
        assert seen.min() >= 0 and seen.max() <= 1
        padded = (seen == 0.5).all(dim=1)  # (N, hi, hi) pixels equal to the pad value
        per_image = padded.flatten(1).sum(1)
        # R in [lo, hi): at least (hi^2 - (hi-1)^2) pixels are padding, at most hi^2 - lo^2
        assert (per_image >= hi * hi - (hi - 1) ** 2).all()
        assert (per_image <= hi * hi - lo * lo).all()
    # 3 passes -> log of averaged probabilities
    assert torch.allclose(out.exp().sum(1), torch.ones(4), atol=1e-5)


def test_seeded_generator_is_deterministic_and_draws_vary():
    x = torch.rand(3, 3, 32, 32)
    outs = []
    for _ in range(2):
        clf = _Recorder()
        model = RandomResizePad(clf, 32, "competition", passes=5, generator=torch.Generator().manual_seed(7))
        outs.append((model(x), clf.seen))
    assert torch.equal(outs[0][0], outs[1][0])
    assert all(torch.equal(a, b) for a, b in zip(outs[0][1], outs[1][1]))
    sizes_or_offsets_differ = any(not torch.equal(outs[0][1][0], s) for s in outs[0][1][1:])
    assert sizes_or_offsets_differ


def test_paper_variant_single_pass_returns_classifier_logits_of_the_transform():
    clf = _Recorder()
    model = RandomResizePad(clf, 32, "paper", generator=torch.Generator().manual_seed(1))
    assert model.passes == 1 and model.mode == "bilinear" and not model.flip
    x = torch.rand(2, 3, 32, 32)
    out = model(x)
    assert torch.equal(out, clf.seen[0].mean((2, 3)) * 10)


def test_competition_average_matches_hand_computation():
    clf = _Recorder()
    model = RandomResizePad(clf, 32, "competition", generator=torch.Generator().manual_seed(3))
    assert model.passes == 30 and model.mode == "nearest" and model.flip
    x = torch.rand(2, 3, 32, 32)
    out = model(x)
    expected = torch.stack([F.softmax(s.mean((2, 3)) * 10, 1) for s in clf.seen]).mean(0).log()
    assert torch.allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("variant", ["paper", "competition"])
def test_differentiable_for_eot(variant):
    model = RandomResizePad(_Recorder(), 32, variant, passes=2, generator=torch.Generator().manual_seed(0))
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    model(x)[:, 0].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_wrap_defense_and_spec_validation():
    wrapped = wrap_defense(_Recorder(), {"name": "random-resize-pad", "variant": "competition", "passes": 4}, 32)
    assert isinstance(wrapped, RandomResizePad) and wrapped.passes == 4 and wrapped.low == 33
    assert defense_spec("random-resize-pad") == {"name": "random-resize-pad", "variant": "paper", "passes": 1}
    assert describe_defense(defense_spec("random-resize-pad", "competition")) == "random-resize-pad (competition, 30 passes)"
    with pytest.raises(InputError):
        defense_spec("jpeg")
    with pytest.raises(InputError):
        wrap_defense(_Recorder(), {"name": "random-resize-pad", "variant": "fancy"}, 32)
    with pytest.raises(InputError):
        defense_spec("random-resize-pad", passes=0)


@pytest.mark.parametrize("variant", ["paper", "competition"])
def test_canvas_holds_the_resized_image_at_a_random_offset(variant):
    clf = _Recorder()
    model = RandomResizePad(clf, 32, variant, passes=1, generator=torch.Generator().manual_seed(5))
    x = torch.rand(6, 3, 32, 32) * 0.4 + 0.55  # never equal to the 0.5 padding
    model(x)
    canvas = clf.seen[0]
    offsets = set()
    for i in range(6):
        inside = (canvas[i] != 0.5).any(0)
        rows, cols = inside.any(1).nonzero().flatten(), inside.any(0).nonzero().flatten()
        size = int(rows.numel())
        assert int(cols.numel()) == size and model.low <= size < model.high
        top, left = int(rows[0]), int(cols[0])
        offsets.add((top, left))
        kwargs = {"align_corners": False} if model.mode == "bilinear" else {}
        expected = F.interpolate(x[i : i + 1], size=(size, size), mode=model.mode, **kwargs)[0]
        window = canvas[i, :, top : top + size, left : left + size]
        if variant == "paper":
            assert torch.allclose(window, expected, atol=1e-6)
        else:
            assert torch.allclose(window, expected, atol=1e-6) or torch.allclose(window, expected.flip(-1), atol=1e-6)
    assert len(offsets) > 1
