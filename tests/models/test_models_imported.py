"""core.models: weights files, exported-program restrictions, class maps, imported networks."""

from __future__ import annotations

import io
import json
import os
import pickle
import sys
import zipfile

import pytest
import torch
from safetensors.torch import save_file

from defendr_cli.core.errors import InputError, MismatchError
from defendr_cli.core.models.class_map import read_class_map_file, resolve_class_map
from defendr_cli.core.models.exported import check_graph_ops, load_exported_program
from defendr_cli.core.models.imported import (TIMM_INSTALL, ImportedClassifier, build_network, default_cam_layer,
                                              normalization)
from defendr_cli.core.models.normalize import Normalize
from defendr_cli.core.models.weights_file import load_strict, read_state_dict
from tests.models import import_helpers as H


def test_pth_and_safetensors_read_back_the_same_weights(tmp_path):
    net = H.resnet18()
    state = net.state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "w.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    for name in ("w.pth", "w.safetensors"):
        loaded, notes = read_state_dict(tmp_path / name)
        assert loaded.keys() == state.keys()
        assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert any("module." in n for n in read_state_dict(tmp_path / "w.pth")[1])


def test_a_pickled_model_object_is_refused(tmp_path):
    torch.save(H.Thousand(), tmp_path / "whole.pth")  # the model object, not its state dict
    with pytest.raises(InputError, match="weights_only"):
        read_state_dict(tmp_path / "whole.pth")


def test_strict_loading_names_missing_and_unexpected_keys():
    state = H.resnet18().state_dict()
    state["head.weight"] = state.pop("fc.weight")
    with pytest.raises(MismatchError, match=r"missing: fc\.weight.*unexpected: head\.weight"):
        load_strict(H.resnet18(), state, what="torchvision:resnet18")


def test_imported_classifier_equals_the_original_after_normalization():
    net = H.resnet18()
    module = ImportedClassifier(net, normalize=normalization("0.5,0.4,0.3/0.2,0.25,0.3")).eval()
    x = torch.rand(3, 3, H.SIZE, H.SIZE)
    expected = net(Normalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))(x))
    assert torch.allclose(module(x), expected, atol=1e-6)
    restricted = ImportedClassifier(net, normalize=None, class_index=[4, 0]).eval()
    assert torch.allclose(restricted(x), net(x)[:, [4, 0]], atol=1e-6)


def test_normalize_spec_errors():
    assert normalization("none") is None
    with pytest.raises(InputError):
        normalization("0.5,0.5/0.5,0.5,0.5")


def test_class_map_from_wnids_file_and_mismatch(tmp_path):
    wnids = H.some_wnids()
    cmap = resolve_class_map(wnids, 1000)
    assert cmap.how == "imagenet-wnid" and cmap.indices == [0, 3, 500, 999]
    assert resolve_class_map(["a", "b"], 2) is None
    (tmp_path / "map.txt").write_text("# cache id, output\nb 7\na\t2\n")
    (tmp_path / "map.json").write_text(json.dumps({"a": 2, "b": 7}))
    for name in ("map.txt", "map.json"):
        cmap = resolve_class_map(["a", "b"], 10, mapping=read_class_map_file(tmp_path / name), source=name)
        assert cmap.indices == [2, 7]
    with pytest.raises(MismatchError, match="1000 outputs.*n01440764.*3 classes.*a, b, c"):
        resolve_class_map(["a", "b", "c"], 1000)
    with pytest.raises(MismatchError, match="lacks 1"):
        resolve_class_map(["a", "c"], 10, mapping={"a": 1}, source="f")


def _program(tmp_path):
    return H.export_program(H.resnet18(), tmp_path / "r.pt2")


def _rewrite(src, dst, extra: dict[str, bytes]):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        root = zin.namelist()[0].split("/")[0]
        for item in zin.namelist():
            if item.split("/", 1)[1] not in extra:
                zout.writestr(item, zin.read(item))
        for rel, blob in extra.items():
            zout.writestr(f"{root}/{rel}", blob)
    return dst


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_exported_program_loads_and_malicious_archives_are_refused(tmp_path):
    good = _program(tmp_path)
    assert load_exported_program(good) is not None
    with zipfile.ZipFile(good) as archive:
        sample = next(n.split("/", 1)[1] for n in archive.namelist() if "sample_inputs" in n)
    buffer = io.BytesIO()
    torch.save({"x": _Payload()}, buffer)
    evil = _rewrite(good, tmp_path / "evil.pt2", {sample: buffer.getvalue()})
    with pytest.raises(InputError, match="pickled Python objects"):
        load_exported_program(evil)
    native = _rewrite(good, tmp_path / "aoti.pt2", {"data/aotinductor/model/model.so": b"\x7fELF"})
    with pytest.raises(InputError, match="aotinductor"):
        load_exported_program(native)
    opaque_config = json.dumps({"config": {"c": {"path_name": "opaque_obj_0", "is_param": False,
                                                  "use_pickle": True, "tensor_meta": None}}}).encode()
    opaque = _rewrite(good, tmp_path / "opaque.pt2", {"data/constants/model_constants_config.json": opaque_config,
                                                      "data/constants/opaque_obj_0": pickle.dumps(1)})
    with pytest.raises(InputError, match="pickled Python or TorchBind"):
        load_exported_program(opaque)


def test_graph_calling_a_non_aten_function_is_refused(tmp_path):
    program = load_exported_program(_program(tmp_path))
    node = next(n for n in program.graph.nodes if n.op == "call_function")
    node.target = torch.save
    with pytest.raises(InputError, match="save"):
        check_graph_ops(program, tmp_path / "r.pt2")


def test_cam_layer_defaults():
    assert default_cam_layer("torchvision", "resnet50", H.resnet18())[0] == "layer4"
    assert default_cam_layer("torchvision", "convnext_tiny", H.resnet18())[0] == "features"
    layer, note = default_cam_layer("torchvision", "vit_b_16", H.resnet18())
    assert layer is None and "transformer" in note


def test_timm_network_and_missing_timm(monkeypatch):
    net = build_network("timm", "test_resnet", 3)
    assert net.eval()(torch.rand(2, 3, 32, 32)).shape == (2, 3)
    assert default_cam_layer("timm", "test_resnet", net)[0] == "layer4"
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(InputError) as info:
        build_network("timm", "test_resnet", 3)
    assert str(info.value) == TIMM_INSTALL and 'pip install "defendr-cli[timm]"' in str(info.value)


@pytest.mark.parametrize(("name", "content"), [("m.json", b"\xff\xfe{"), ("m.json", b'{"a": 1.5}'),
                                               ("m.json", b'{"a": true}'), ("m.json", b'{"a": null}'),
                                               ("m.json", b'{"a": 1, "a": 2}'), ("m.txt", b"a 1\na 2\n"),
                                               ("m.json", b"[" * 100000)])
def test_hostile_class_map_files_are_one_line_input_errors(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match="cannot read class map") as info:
        read_class_map_file(tmp_path / name)
    assert "\n" not in str(info.value)
