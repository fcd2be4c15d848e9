"""Stage fixtures: one tiny workspace (cache, two trained models, two adversarial test sets) per module."""

from __future__ import annotations

import pytest

from defendr_cli.core.workspace import Workspace
from tests.evaluation import eval_builders as B


@pytest.fixture(scope="module")
def stage_ws(tmp_path_factory):
    """Workspace with data/synth.h5, models baseline + advfgsm, adv test sets fgsm 8/255 and pgd 32/255."""
    ws = Workspace(tmp_path_factory.mktemp("stagews") / "ws")
    cache = B.write_cache(ws)
    baseline = B.train_classifier(cache, seed=0)
    B.save_classifier(ws, "baseline", baseline, cache)
    B.save_classifier(ws, "advfgsm", B.train_classifier(cache, seed=1), cache, method="adv",
                      hparams={"adv": ["fgsm-eps8_255"]})
    B.write_adv_set(ws, baseline, cache, attack="fgsm", eps=8 / 255, eps_label="8/255")
    B.write_adv_set(ws, baseline, cache, attack="pgd", eps=32 / 255, eps_label="32/255", steps=5)
    return ws
