"""NaN models are errors, never 'robust' (issue 23, item 2): floats read at import, logits at use."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from defendr_cli.cli.app import app
from defendr_cli.core.errors import CorruptArtefactError, InputError
from defendr_cli.core.models.finite import guard_finite_logits, require_finite_logits
from defendr_cli.core.models.imported import normalization
from defendr_cli.core.models.loading import load_model
from defendr_cli.core.models.pretrained import _state_dict_from_file as state_dict_from_file
from defendr_cli.core.models.weights_file import read_state_dict
from defendr_cli.core.workspace import Workspace
from tests.evaluation import eval_builders as B
from tests.models import import_helpers as H

runner = CliRunner()


def _cli(ws, *args):
    result = runner.invoke(app, ["--workdir", str(ws.root), *args])
    return result.exit_code, result.output.strip().splitlines()


@pytest.fixture(scope="module")
def nan_ws(tmp_path_factory):
    """A workspace with a cache, a fine classifier 'good' and the same with one NaN weight, 'nan'."""
    ws = Workspace(tmp_path_factory.mktemp("finite") / "ws")
    cache = B.write_cache(ws)
    model = B.train_classifier(cache, steps=5)
    B.save_classifier(ws, "good", model, cache)
    broken = B.train_classifier(cache, steps=5)
    with torch.no_grad():
        next(p for p in broken.parameters() if p.dim() > 1).view(-1)[0] = float("nan")
    B.save_classifier(ws, "nan", broken, cache)
    B.write_adv_set(ws, model, cache, attack="fgsm", eps=8 / 255, eps_label="8/255")
    return ws


def test_require_finite_logits_names_the_model():
    require_finite_logits(torch.zeros(2, 3), "m")
    with pytest.raises(CorruptArtefactError, match="model 'm'.*1 of 2 images"):
        require_finite_logits(torch.tensor([[0.0, float("nan")], [1.0, 2.0]]), "m")
    with pytest.raises(CorruptArtefactError, match="non-finite"):
        require_finite_logits(torch.tensor([[float("inf"), 0.0]]), "m")


def test_the_guard_blames_the_model_only_for_finite_inputs():
    net = guard_finite_logits(torch.nn.Linear(3, 2), "lin")
    with torch.no_grad():
        net.weight[0, 0] = float("nan")
    with pytest.raises(CorruptArtefactError, match="'lin'"):
        net(torch.ones(1, 3))
    clean = guard_finite_logits(torch.nn.Linear(3, 2), "ok")
    assert torch.isnan(clean(torch.full((1, 3), float("nan")))).all()  # the caller's NaN, the caller's check


def test_loaded_nan_model_is_refused_at_its_first_forward_pass(nan_ws):
    module = load_model(nan_ws, "nan").module
    with pytest.raises(CorruptArtefactError, match="model 'nan' returns non-finite logits"):
        module(torch.rand(2, 3, B.SIZE, B.SIZE))
    assert torch.isfinite(load_model(nan_ws, "good").module(torch.rand(2, 3, B.SIZE, B.SIZE))).all()


def test_evaluate_and_attack_of_a_nan_model_fail_in_one_line(nan_ws):
    code, lines = _cli(nan_ws, "evaluate", "--models", "good,nan", "--device", "cpu", "--name", "n")
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error (corrupt)") and "'nan'" in lines[0], lines
    code, lines = _cli(nan_ws, "evaluate", "--model", "nan", "--adaptive", "--subset", "4", "--device", "cpu",
                       "--name", "n2")
    assert code == 1 and "'nan'" in lines[-1] and "non-finite" in lines[-1], lines
    code, lines = _cli(nan_ws, "attack", "fgsm", "--model", "nan", "--eps", "8/255", "--split", "test",
                       "--device", "cpu")
    assert code == 1 and "'nan'" in lines[-1] and "non-finite" in lines[-1], lines


def test_nan_weights_and_normalization_are_refused_at_import(tmp_path):
    state = H.resnet18().state_dict()
    state["fc.bias"][0] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    with pytest.raises(InputError, match="fc.bias.*NaN"):
        read_state_dict(tmp_path / "nan.pth")
    for spec in ("nan,0,0/1,1,1", "0,0,0/1,inf,1", "0,0,0/nan,1,1", "0,0,0/-1,1,1"):
        with pytest.raises(InputError, match="finite"):
            normalization(spec)
    ws = Workspace(tmp_path / "ws")
    code, lines = _cli(ws, "import", "n", "--arch", "torchvision:resnet18", "--weights", str(tmp_path / "nan.pth"))
    assert code == 1 and len(lines) == 1 and "NaN" in lines[0], lines
    torch.save(H.resnet18().state_dict(), tmp_path / "ok.pth")
    code, lines = _cli(ws, "import", "n", "--arch", "torchvision:resnet18", "--weights", str(tmp_path / "ok.pth"),
                       "--normalize", "nan,0,0/1,1,1")
    assert code == 1 and len(lines) == 1 and "finite" in lines[0], lines
    assert not ws.path_for("model", "n", create_dir=False).exists()



def test_nan_pretrained_weights_are_refused(tmp_path):
    torch.save({"conv1.weight": torch.full((2, 3), float("inf"))}, tmp_path / "p.pth")
    with pytest.raises(InputError, match="conv1.weight.*NaN or Inf"):
        state_dict_from_file(tmp_path / "p.pth")
