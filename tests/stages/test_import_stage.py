"""core.stages.import_model.run_import: round trips through a checkpoint, class maps, binding."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from defendr_cli.core.errors import InputError, MismatchError
from defendr_cli.core.io.reader import read_cache_info
from defendr_cli.core.io.checkpoint import read_checkpoint
from defendr_cli.core.models.loading import check_checkpoint_against_cache, load_model
from defendr_cli.core.models.imported import build_network
from defendr_cli.core.models.normalize import Normalize
from defendr_cli.core.stages.import_model import ImportConfig, run_import
from tests.models import import_helpers as H


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_torchvision_weights_round_trip(workspace, tmp_path, suffix):
    net = H.resnet18()
    weights = tmp_path / f"r18{suffix}"
    if suffix == ".pth":
        torch.save(net.state_dict(), weights)
    else:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    result = run_import(workspace, ImportConfig("r18", arch="torchvision:resnet18", weights=weights,
                                                image_size=H.SIZE))
    assert result.num_outputs == 5 and result.cam_layer == "layer4" and result.class_map is None
    checkpoint = read_checkpoint(result.path)
    assert checkpoint.kind == "imported" and checkpoint.data.to_dict() == {"image_size": H.SIZE}
    loaded = load_model(workspace, "r18")
    x = torch.rand(4, 3, H.SIZE, H.SIZE)
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), net(Normalize()(x)), atol=1e-5)
    assert loaded.module.last_conv_stage is loaded.module.net.layer4


def test_exported_program_round_trip_and_changed_program(workspace, tmp_path):
    net = H.resnet18()
    program = H.export_program(net, tmp_path / "r18.pt2")
    result = run_import(workspace, ImportConfig("mine", exported=program))
    assert result.normalize is None and result.image_size == H.SIZE and result.cam_layer == "layer4"
    loaded = load_model(workspace, "mine")
    x = torch.rand(3, 3, H.SIZE, H.SIZE, requires_grad=True)
    logits = loaded.module(x)
    assert torch.allclose(logits, net(x), atol=1e-5)
    logits.sum().backward()  # attacks need input gradients through the program
    assert x.grad is not None and x.grad.abs().sum() > 0
    copy = workspace.models_dir / "mine.pt2"
    copy.write_bytes(copy.read_bytes() + b"\0")
    with pytest.raises(MismatchError, match="changed since it was imported"):
        load_model(workspace, "mine")


def test_thousand_class_model_is_restricted_to_a_wnid_cache(workspace, tmp_path):
    net = H.Thousand().eval()
    torch.save(net.state_dict(), tmp_path / "k.pth")
    wnids = H.some_wnids()
    cache = H.write_cache(workspace, wnids)
    program = H.export_program(net, tmp_path / "k.pt2")
    # torchvision has no 'Thousand': go through the exported path and the class map with a cache
    result = run_import(workspace, ImportConfig("k", exported=program, data="wnids", normalize="imagenet"))
    assert result.class_map.how == "imagenet-wnid" and result.class_map.indices == [0, 3, 500, 999]
    assert "4 classes (imagenet-wnid)" in result.summary
    loaded = load_model(workspace, "k")
    x = torch.rand(2, 3, H.SIZE, H.SIZE)
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), net(Normalize()(x))[:, [0, 3, 500, 999]], atol=1e-5)
    check_checkpoint_against_cache(loaded.checkpoint, read_cache_info(cache))
    other = H.write_cache(workspace, H.some_wnids((1, 2, 3, 4)), name="other")
    with pytest.raises(MismatchError, match="other classes"):
        check_checkpoint_against_cache(loaded.checkpoint, read_cache_info(other))


def test_mismatch_without_map_and_class_map_file(workspace, tmp_path):
    net = H.resnet18(num_classes=7)
    torch.save(net.state_dict(), tmp_path / "r.pth")
    H.write_cache(workspace, ["cat", "dog", "fish"], name="pets")
    config = dict(arch="torchvision:resnet18", weights=tmp_path / "r.pth", data="pets")
    with pytest.raises(MismatchError, match=r"7 outputs \(0, 1, 2, 3.*3 classes \(cat, dog, fish\)"):
        run_import(workspace, ImportConfig("r", **config))
    (tmp_path / "map.txt").write_text("cat 6\ndog 0\nfish 2\n")
    result = run_import(workspace, ImportConfig("r", class_map=tmp_path / "map.txt", **config))
    x = torch.rand(2, 3, H.SIZE, H.SIZE)
    with torch.no_grad():
        got = load_model(workspace, "r").module(x)
        assert torch.allclose(got, net(Normalize()(x))[:, [6, 0, 2]], atol=1e-5)
    assert result.class_map.how == "file"


def test_timm_import_uses_the_models_own_normalization(workspace, tmp_path):
    net = build_network("timm", "test_resnet", 4).eval()
    torch.save(net.state_dict(), tmp_path / "t.pth")
    result = run_import(workspace, ImportConfig("t", arch="timm:test_resnet", weights=tmp_path / "t.pth",
                                                image_size=32))
    assert result.normalize["name"] == "timm" and result.cam_layer == "layer4" and result.num_outputs == 4
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = net(Normalize(tuple(result.normalize["mean"]), tuple(result.normalize["std"]))(x))
        assert torch.allclose(load_model(workspace, "t").module(x), expected, atol=1e-5)


def test_bad_combinations_are_input_errors(workspace, tmp_path):
    with pytest.raises(InputError, match="either --arch"):
        run_import(workspace, ImportConfig("x"))
    with pytest.raises(InputError, match="needs --weights"):
        run_import(workspace, ImportConfig("x", arch="torchvision:resnet18"))
    with pytest.raises(InputError, match="torchvision:NAME or timm:NAME"):
        run_import(workspace, ImportConfig("x", arch="keras:resnet", weights=tmp_path / "w.pth"))
