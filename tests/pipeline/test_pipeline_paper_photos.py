"""The paper profile end to end on real photographs at 299 px with ResNet-101, shrunk with --set.

The smallest run that still exercises the paper's image size and network: 2 classes x 3 photographs
(scikit-image's), one epoch for every trained model (DUNET and the fast-FGSM control included), one
FGSM and a one-step PGD set instead of the six attack sets, and an FGSM-only adaptive suite.
Measured once, on a 2-core machine shared by many other jobs: 211 s user + 22 s system CPU on 2
threads, peak resident memory 4.5 GB. It was not timed on an idle machine. ResNet-101 at 299 px is
about 28 GFLOP per forward pass. docs/paper-profile.md gives the larger 4 x 3 shrink, which keeps
the six attack sets and the suite.
"""

from __future__ import annotations

import json

from typer.testing import CliRunner

from defendr_cli.cli.app import app
from defendr_cli.core.io.checkpoint import read_checkpoint
from defendr_cli.core.io.reader import read_cache_info
from tests.data.photo_helpers import make_photo_imagenet_folder

SHRINK = [
    "data.classes=2", "data.per_class=3", "data.split=1,1,1",
    "model.pretrained=null", "train.epochs=1", "train.batch_size=4",
    "attacks=[{\"attack\": \"fgsm\", \"eps\": \"0.12\", \"eps_space\": \"normalized\"}, "
    "{\"attack\": \"pgd\", \"eps\": \"0.12\", \"eps_space\": \"normalized\", \"steps\": 1}]",
    "extra_test_attacks=[]",
    "methods.advpgd.adv=[\"pgd-eps0.12n-s1\"]", "methods.dunet.adv=[\"fgsm-eps0.12n\", \"pgd-eps0.12n-s1\"]",
    "methods.dunet.width_mult=0.125",
    "ensembles={\"dunet-alp-clp\": [\"dunet\", \"alp\", \"clp\"]}", "randomization.wrap=[\"baseline\"]",
    "evaluate.suite=custom", "evaluate.attacks=[\"fgsm\"]", "evaluate.subset=2", "evaluate.eps=[]",
    "evaluate.eot=2", "evaluate.draws=2", "evaluate.batch_size=8", "gradcam.count=2",
]


def test_paper_profile_runs_end_to_end_on_real_photographs_at_299_with_resnet101(tmp_path):
    source = make_photo_imagenet_folder(tmp_path / "photos", classes=2, per_class=3)
    work = tmp_path / "work"
    args = ["--workdir", str(work), "reproduce", "--profile", "paper", "--source", str(source),
            "--device", "cpu", "--json"]
    for item in SHRINK:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output[result.output.index("{"):])
    ids = {s["id"] for s in out["stages"]}
    assert {"train:baseline", "train:dunet", "train:fastadv", "evaluate"} <= ids
    assert read_cache_info(next((work / "data").glob("*.h5"))).image_size == 299
    for name in ("baseline", "adv", "advpgd", "alp", "clp", "lsq", "dunet", "fastadv"):
        checkpoint = read_checkpoint(work / "models" / f"{name}.pt")
        assert len(checkpoint.history) == 1, name  # train.epochs reached every model
    assert read_checkpoint(work / "models" / "baseline.pt").config["arch"] == "resnet101"
    results = json.loads((work / "reports" / "reproduce" / "results.json").read_text())
    adaptive = {m["name"] for m in results["adaptive"]["models"]}
    assert {"fastadv", "dunet", "dunet-alp-clp", "baseline+random-resize-pad"} <= adaptive
    assert any(p["name"] == "robust control fastadv holds" for p in out["phenomena"])
