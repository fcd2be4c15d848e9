"""Transfer protocol on a tiny workspace: numbers recomputed by hand, caching, mismatch errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from defendr_cli.core.io.adversarial import AdvSetReader
from defendr_cli.core.io.reader import SplitReader
from defendr_cli.core.errors import MismatchError
from defendr_cli.core.evaluation import metrics
from defendr_cli.core.evaluation.subjects import load_eval_model
from defendr_cli.core.evaluation.report.transfer_tables import transfer_tables
from defendr_cli.core.evaluation.transfer.run import run_transfer
from defendr_cli.core.runtime import Runtime
from tests.evaluation import eval_builders as B

CPU = Runtime()


def _run(ws, names=("baseline", "advfgsm"), adv=None, cache_dir=None):
    models = [load_eval_model(ws, n, device=torch.device("cpu")) for n in names]
    adv_paths = adv or [ws.path_for("adv", n) for n in ws.names("adv")]
    return models, run_transfer(models, ws.path_for("data", "synth"), adv_paths, runtime=CPU,
                                cache_dir=cache_dir or ws.reports_dir / "_predictions", seed=3, batch_size=16)


def test_transfer_numbers_match_a_direct_computation(eval_ws):
    models, result = _run(eval_ws)
    baseline = models[0].module
    pgd_name = "pgd-eps32_255-s5-baseline-test"
    with SplitReader(eval_ws.path_for("data", "synth"), "test") as r:
        x, y = r.read(np.arange(len(r))), np.asarray(r.labels)
    with AdvSetReader(eval_ws.path_for("adv", pgd_name)) as a:
        xa = a.read(np.arange(len(a)))
    with torch.no_grad():
        clean_pred, adv_pred = baseline(x).argmax(1).numpy(), baseline(xa).argmax(1).numpy()
    row = result.models[0]
    assert row.name == "baseline"
    assert row.clean == metrics.accuracy(clean_pred, y)
    cell = row.sets[pgd_name]
    assert cell.adv100 == metrics.accuracy(adv_pred, y)
    assert cell.adv50 == metrics.mixed_accuracy(clean_pred, adv_pred, y, seed=3)
    assert cell.adv100 < row.clean  # white-box pgd against the source model itself
    assert [s.name for s in result.adv_sets] == ["fgsm-eps8_255-baseline-test", pgd_name]
    assert result.models[1].train_attack == "fgsm-eps8_255"
    assert np.asarray(result.confusion.matrix).sum() == len(y)
    as_json = result.to_dict()  # results.json content: plain dicts under the same keys
    assert as_json["models"][0]["sets"][pgd_name]["adv100"] == cell.adv100
    assert as_json["cache"] == {"hits": result.cache_hits, "misses": result.cache_misses}


def test_tables_follow_the_paper_layout(eval_ws):
    _, result = _run(eval_ws)
    tables = {t.key.split("-")[0]: t for t in transfer_tables(result)}
    assert tables["table1"].columns[-3:] == ["No Adv. Ex.", "50% Adv. Ex.", "100% Adv. Ex."]
    assert [r[0] for r in tables["table2"].rows] == ["baseline", "advfgsm"]
    assert tables["table4"].rows[0][0] == "advfgsm (fgsm-eps8_255)"
    assert "table5" in tables and "table6" in tables
    assert "table3" not in tables  # no ensemble evaluated


def test_predictions_are_cached_per_model_and_set(eval_ws, tmp_path):
    _, first = _run(eval_ws, cache_dir=tmp_path / "cache")
    assert (first.cache_hits, first.cache_misses) == (0, 6)
    _, second = _run(eval_ws, cache_dir=tmp_path / "cache")
    assert (second.cache_hits, second.cache_misses) == (6, 0)
    assert second.models == first.models


def test_adv_set_from_another_cache_is_a_mismatch(eval_ws, tmp_path):
    from defendr_cli.core.workspace import Workspace

    other_ws = Workspace(tmp_path / "other")
    cache = B.write_cache(other_ws, seed=5)
    model = B.train_classifier(cache, steps=5)
    foreign = B.write_adv_set(other_ws, model, cache)
    with pytest.raises(MismatchError, match="another clean cache"):
        _run(eval_ws, names=("baseline",), adv=[foreign])


def test_model_for_other_classes_is_a_mismatch(eval_ws, tmp_path):
    from defendr_cli.core.workspace import Workspace

    other_ws = Workspace(tmp_path / "other")
    cache = B.write_cache(other_ws, class_offset=1)
    B.save_classifier(eval_ws, "foreign", B.train_classifier(cache, steps=2), cache)
    with pytest.raises(MismatchError, match="other classes"):
        _run(eval_ws, names=("foreign",))
    eval_ws.path_for("model", "foreign").unlink()
