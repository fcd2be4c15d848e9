"""The classifier registry: shapes, normalization first, last conv stage, freezing, pretrained files."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision

from defendr_cli.core.errors import InputError, MismatchError, MissingArtefactError, SourceError
from defendr_cli.core.models import pretrained as pretrained_module
from defendr_cli.core.models.normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize
from defendr_cli.core.models.registry import ARCHS, build_classifier


@pytest.mark.parametrize("arch", ["tinycnn", "tinyresnet", "resnet18"])
@pytest.mark.parametrize("size", [16, 24])
def test_classifier_maps_pixels_to_logits_of_any_size(arch, size):
    model = build_classifier(arch, 5).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 3, size, size))
    assert logits.shape == (2, 5)
    assert isinstance(model.last_conv_stage, torch.nn.Module)
    assert model.head.out_features == 5


def test_every_registered_arch_builds_with_normalization_first():
    for arch in ARCHS:
        model = build_classifier(arch, 3)
        first = next(model.children())
        assert isinstance(first, Normalize), arch
        assert not any(k.startswith("normalize") for k in model.state_dict()), "normalization buffers persist"


def test_normalize_uses_imagenet_statistics():
    x = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    assert torch.allclose(Normalize()(x), torch.zeros(1, 3, 2, 2), atol=1e-6)
    y = x + torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(Normalize()(y), torch.ones(1, 3, 2, 2), atol=1e-6)


def test_last_conv_stage_is_hookable_and_ends_the_convolutions():
    model = build_classifier("tinyresnet", 4).eval()
    seen = {}

    def record(module, inputs, output):
        seen["shape"] = tuple(output.shape)

    handle = model.last_conv_stage.register_forward_hook(record)
    model(torch.rand(1, 3, 32, 32))
    handle.remove()
    assert seen["shape"] == (1, 64, 8, 8)


def test_freeze_backbone_trains_only_last_stage_and_head():
    model = build_classifier("resnet18", 4).freeze_backbone()
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("net.layer4.", "net.fc.")) for n in trainable)
    assert any(n.startswith("net.fc.") for n in trainable)
    model.train()
    assert not model.net.layer1.training and model.net.layer4.training and model.net.fc.training


def test_unknown_arch_and_tiny_pretrained_are_input_errors():
    with pytest.raises(InputError, match="unknown architecture"):
        build_classifier("vgg16", 10)
    with pytest.raises(InputError, match="no pretrained"):
        build_classifier("tinycnn", 10, pretrained="imagenet")


def test_local_pretrained_file_loads_backbone_and_replaces_head(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = build_classifier("resnet18", 7, pretrained=str(path))
    assert torch.equal(model.net.conv1.weight, reference.conv1.weight)
    assert torch.equal(model.net.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)
    assert model.head.out_features == 7


def test_pretrained_file_of_another_arch_is_a_mismatch(tmp_path):
    path = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), path)
    with pytest.raises(MismatchError):
        build_classifier("resnet18", 7, pretrained=str(path))
    with pytest.raises(MissingArtefactError):
        build_classifier("resnet18", 7, pretrained=str(tmp_path / "nope.pth"))


def test_imagenet_offline_names_the_file_to_download(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(SourceError) as info:
        pretrained_module.imagenet_state_dict("resnet18")
    message = str(info.value)
    assert "resnet18-" in message and ".pth" in message and "--pretrained" in message
