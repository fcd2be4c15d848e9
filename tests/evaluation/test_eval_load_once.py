"""One evaluation reads and builds each checkpoint once, however many rows name it."""

from __future__ import annotations

import torch

from defendr_cli.core.evaluation.selection import load_eval_models
from defendr_cli.core.models import loading
from defendr_cli.core.models.ensemble_manifest import create_ensemble


def test_each_checkpoint_is_loaded_once_per_evaluation(eval_ws, monkeypatch):
    create_ensemble(eval_ws, "pair-once", ["baseline", "advfgsm"], force=True)
    reads = []
    original = loading.read_checkpoint_and_fingerprint
    monkeypatch.setattr(loading, "read_checkpoint_and_fingerprint", lambda path: reads.append(path.name) or original(path))
    models = load_eval_models(eval_ws, ["baseline", "advfgsm", "baseline+random-resize-pad", "pair-once"],
                              [["baseline", "advfgsm"]], device=torch.device("cpu"), defense=None,
                              variant="paper", image_size=16)
    assert [m.name for m in models] == ["baseline", "advfgsm", "baseline+random-resize-pad", "pair-once",
                                        "baseline+advfgsm"]
    assert sorted(reads) == ["advfgsm.pt", "baseline.pt", "pair-once.pt"]  # each file once
    by_name = {m.name: m for m in models}
    assert by_name["baseline+random-resize-pad"].module.classifier is by_name["baseline"].module  # shared
    images = torch.rand(2, 3, 16, 16)
    with torch.no_grad():  # sharing changes no prediction
        assert torch.equal(by_name["pair-once"].module(images), by_name["baseline+advfgsm"].module(images))
