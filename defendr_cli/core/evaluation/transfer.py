"""The paper's transfer protocol: clean / 50% / 100% adversarial accuracy on cached test sets.

`run_transfer(models, data_path, adv_paths, ...)` runs every model over the clean test split and
over every adversarial test set once (predictions cached per (model key, set key)) and returns a
JSON-able dict (see `run_transfer`); `transfer_tables(result)` lays it out like the paper's
Tables 1-6.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from defendr_cli.core.distributed import SINGLE, DistContext
from defendr_cli.core.errors import InputError, MismatchError
from defendr_cli.core.evaluation import metrics
from defendr_cli.core.evaluation.predictions import PredictionCache, Predictions, safe_key
from defendr_cli.core.evaluation.sharded import predict_sharded
from defendr_cli.core.evaluation.subjects import EvalModel, attack_label_from_set_name
from defendr_cli.core.evaluation.tables import Table
from defendr_cli.core.io.adv_fingerprint import adv_set_fingerprint
from defendr_cli.core.progress import NullReporter, Reporter
from defendr_cli.core.runtime import Runtime

TEST_SPLIT = "test"


def eps_scalar(eps: Any) -> float:
    """A number for plotting an eps that may be per-channel (mean of the channels)."""
    if isinstance(eps, (list, tuple, np.ndarray, torch.Tensor)):
        return float(np.mean(np.asarray(eps, dtype=np.float64)))
    return float(eps)


def _jsonable(value: Any) -> Any:
    if is_dataclass(value):
        return _jsonable(asdict(value))
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


def describe_adv_set(info: Any) -> dict:
    """The fields of an AdvSetInfo a report shows, JSON-able."""
    return {
        "name": info.name, "attack": info.attack, "eps": _jsonable(info.eps), "eps_label": info.eps_label,
        "eps_space": info.eps_space, "steps": info.steps, "source_model": info.source_model,
        "split": info.split, "count": info.count, "success_rate": info.success_rate, "dtype": info.dtype,
        "label": attack_label_from_set_name(info.name) or info.name,
    }


def check_adv_set(info: Any, cache_info: Any, labels: np.ndarray, clean_indices: np.ndarray,
                  clean_labels: np.ndarray) -> None:
    """MismatchError unless the adversarial set belongs to this clean cache's test split."""
    if info.clean_fingerprint != cache_info.fingerprint:
        raise MismatchError(
            f"adversarial set '{info.name}' was made from another clean cache (fingerprint "
            f"{info.clean_fingerprint}, this cache is {cache_info.fingerprint})",
            hint="re-run defendr attack on this cache or choose the matching --data")
    if info.split != TEST_SPLIT:
        raise MismatchError(f"adversarial set '{info.name}' is of the {info.split} split; evaluation uses test sets")
    if len(clean_indices) and (clean_indices.min() < 0 or clean_indices.max() >= len(clean_labels)):
        raise MismatchError(f"adversarial set '{info.name}' refers to test rows outside this cache's test split")
    if len(labels) and labels.max() >= cache_info.num_classes:
        raise MismatchError(f"adversarial set '{info.name}' has labels beyond this cache's "
                            f"{cache_info.num_classes} classes")
    if not np.array_equal(labels, clean_labels[clean_indices]):
        raise MismatchError(f"adversarial set '{info.name}' has labels that differ from the clean test "
                            f"split: it was made for other classes")


def check_model_classes(model: EvalModel, cache_info: Any, image: torch.Tensor, runtime: Runtime) -> None:
    """MismatchError when the model was trained on other classes or outputs another class count."""
    if model.payload and model.payload.get("data"):
        from defendr_cli.core.models.checkpoint import check_checkpoint_against_cache

        check_checkpoint_against_cache({**model.payload, "name": model.name}, cache_info)
    with torch.no_grad(), runtime.autocast():
        width = model.module(runtime.to_device(image)).shape[1]
    if width != cache_info.num_classes:
        raise MismatchError(f"model '{model.name}' outputs {width} classes, the cache has {cache_info.num_classes}")


def set_key_for_clean(cache_info: Any) -> str:
    return safe_key("clean", cache_info.fingerprint, TEST_SPLIT)


def set_key_for_adv(path: Path, info: Any) -> str:
    """Cache key of an adversarial set: its name and content fingerprint (recorded when written,
    trusted after a cheap check; see core/io/adv_fingerprint.py)."""
    return safe_key("adv", info.name, adv_set_fingerprint(path))


def primary_set_name(adv_sets: list[dict]) -> str | None:
    """The set Tables 1 and 5-6 and the confusion matrix use: the median eps of the first attack."""
    if not adv_sets:
        return None
    first = adv_sets[0]["attack"]
    same = [s for s in adv_sets if s["attack"] == first]
    return same[(len(same) - 1) // 2]["name"]


def run_transfer(
    models: list[EvalModel],
    data_path: Path,
    adv_paths: list[Path],
    *,
    runtime: Runtime,
    cache_dir: Path,
    seed: int = 0,
    batch_size: int = 128,
    primary: str | None = None,
    top_k: int = 10,
    reporter: Reporter | None = None,
    dist: DistContext = SINGLE,
) -> dict:
    """Clean, 50% and 100% adversarial accuracy of every model on every adversarial test set.

    With `dist` (a torchrun run) the ranks predict disjoint shards (core.evaluation.sharded) and
    every rank gets the single-process result.

    Returns a JSON-able dict: 'data' (cache description), 'adv_sets' (list, sorted by attack and
    eps), 'models' (one dict per model: description, 'clean' accuracy on the whole test split,
    'sets' {set name: {'clean', 'adv50', 'adv100', 'fooled', 'count'}} where 'clean' is on the
    set's rows and 'fooled' is the fraction of correctly classified rows the attack flips),
    'primary_set', 'headline_model', 'per_class' (best/worst classes of the headline model on the
    primary set, 100% adversarial), 'confusion' (clean vs adversarial predictions, K x K counts)
    and 'cache' (hits/misses). Accuracies are fractions in [0, 1].
    """
    from defendr_cli.core.io.adversarial import AdvSetReader, read_adv_info
    from defendr_cli.core.io.reader import SplitReader, read_cache_info

    if not models:
        raise InputError("no model to evaluate: give --model or --models")
    reporter = reporter or NullReporter()
    cache = PredictionCache(cache_dir)
    cache_info = read_cache_info(data_path)
    class_names = list(cache_info.class_names)

    with SplitReader(data_path, TEST_SPLIT) as clean_reader:
        clean_labels = np.asarray(clean_reader.labels, dtype=np.int64)
        probe = clean_reader.read(np.arange(1))
        for model in models:
            check_model_classes(model, cache_info, probe, runtime)
        infos = []
        for path in adv_paths:
            info = read_adv_info(path)
            with AdvSetReader(path) as adv_reader:
                check_adv_set(info, cache_info, np.asarray(adv_reader.labels, dtype=np.int64),
                              np.asarray(adv_reader.clean_indices, dtype=np.int64), clean_labels)
            infos.append((path, info))
        infos.sort(key=lambda pi: (pi[1].attack, eps_scalar(pi[1].eps), pi[1].steps or 0, pi[1].name))
        adv_sets = [describe_adv_set(info) for _, info in infos]
        clean_key = set_key_for_clean(cache_info)
        clean_preds: dict[str, Predictions] = {}
        for model in models:
            clean_preds[model.name] = cache.get_or_compute(model.cache_key(seed, batch_size), clean_key, lambda m=model: predict_sharded(
                m.module, clean_reader, runtime, dist, batch_size=batch_size, seed=seed,
                reporter=reporter, description=f"{m.name}: clean test"))

    adv_preds: dict[tuple[str, str], Predictions] = {}
    for path, info in infos:
        set_key = set_key_for_adv(path, info)
        with AdvSetReader(path) as adv_reader:
            for model in models:
                adv_preds[(model.name, info.name)] = cache.get_or_compute(model.cache_key(seed, batch_size), set_key, lambda m=model: predict_sharded(
                    m.module, adv_reader, runtime, dist, batch_size=batch_size, seed=seed,
                    reporter=reporter, description=f"{m.name}: {info.name}"))

    model_rows = []
    for model in models:
        clean = clean_preds[model.name]
        row = {**model.describe(), "clean": metrics.accuracy(clean.preds, clean.labels), "sets": {}}
        for _, info in infos:
            adv = adv_preds[(model.name, info.name)]
            clean_rows = clean.on_rows(adv.indices)
            correct = clean_rows.preds == adv.labels
            row["sets"][info.name] = {
                "count": len(adv),
                "clean": metrics.accuracy(clean_rows.preds, adv.labels),
                "adv50": metrics.mixed_accuracy(clean_rows.preds, adv.preds, adv.labels, seed),
                "adv100": metrics.accuracy(adv.preds, adv.labels),
                "fooled": float(np.mean(adv.preds[correct] != adv.labels[correct])) if correct.any() else float("nan"),
            }
        model_rows.append(row)

    primary = primary or primary_set_name(adv_sets)
    if primary is not None and primary not in {s["name"] for s in adv_sets}:
        raise InputError(f"--primary '{primary}' is not one of the evaluated sets")
    headline = _headline_model(models, model_rows, primary)
    result = {
        "protocol": "transfer", "seed": seed,
        "data": {"path": str(data_path), "fingerprint": cache_info.fingerprint, "num_classes": cache_info.num_classes,
                 "class_names": class_names, "test_count": int(len(clean_labels)), "image_size": cache_info.image_size},
        "adv_sets": adv_sets, "models": model_rows, "primary_set": primary, "headline_model": headline,
        "per_class": None, "confusion": None,
    }
    if primary is not None and headline is not None:
        clean = clean_preds[headline]
        adv = adv_preds[(headline, primary)]
        clean_rows = clean.on_rows(adv.indices)
        best, worst = metrics.best_and_worst_classes(adv.preds, adv.labels, class_names, k=top_k)
        result["per_class"] = {
            "model": headline, "set": primary,
            "best": _jsonable(best), "worst": _jsonable(worst),
            "clean_accuracy": _jsonable(metrics.per_class_accuracy(clean.preds, clean.labels, len(class_names))),
            "adv_accuracy": _jsonable(metrics.per_class_accuracy(adv.preds, adv.labels, len(class_names))),
        }
        result["confusion"] = {"model": headline, "set": primary, "rows": "clean prediction",
                               "cols": "adversarial prediction",
                               "matrix": metrics.confusion_matrix(clean_rows.preds, adv.preds, len(class_names)).tolist()}
    result["cache"] = {"hits": cache.hits, "misses": cache.misses}
    return _nan_to_none(result)


def _headline_model(models: list[EvalModel], rows: list[dict], primary: str | None) -> str | None:
    """The last ensemble (the paper's 'Defendr'), else the most robust model on the primary set."""
    ensembles = [m.name for m in models if m.is_ensemble]
    if ensembles:
        return ensembles[-1]
    if primary is None:
        return rows[0]["name"] if rows else None
    return max(rows, key=lambda r: (r["sets"][primary]["adv100"], -rows.index(r)))["name"]


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def _model_label(row: dict) -> str:
    return row["name"]


def transfer_tables(result: dict) -> list[Table]:
    """The paper's tables from a `run_transfer` result.

    Table 1 (one per adversarial set): rows models, columns No Adv / 50% Adv / 100% Adv.
    Table 2: models x adversarial sets (100% adversarial). Table 3: ensemble rows.
    Table 4: models with a known training attack x attacks. Tables 5-6: best / worst classes.
    """
    tables: list[Table] = []
    sets = result["adv_sets"]
    rows = result["models"]
    singles = [r for r in rows if not (r["kind"] == "ensemble" or r["members"])]
    ensembles = [r for r in rows if r["kind"] == "ensemble" or r["members"]]
    if not sets:
        table = Table("table1-clean", "Table 1. Single architecture performance (no adversarial test set evaluated)",
                      ["Model", "Trained on", "No Adv. Ex."], percent_columns={2},
                      caption="Accuracy (%) on the clean test split.")
        for r in rows:
            table.add(_model_label(r), r["train_attack"] or "-", r["clean"])
        tables.append(table)
    for s in sets:
        table = Table(f"table1-{s['name']}", f"Table 1. Single architecture performance (adv. ex.: {s['name']})",
                      ["Model", "Trained on", "No Adv. Ex.", "50% Adv. Ex.", "100% Adv. Ex."], percent_columns={2, 3, 4},
                      caption="Accuracy (%) on the clean test split, with a seeded half of the images replaced "
                              "by their adversarial copies, and on the adversarial copies only.")
        for r in singles + ensembles:
            cell = r["sets"][s["name"]]
            table.add(_model_label(r), r["train_attack"] or "-", r["clean"], cell["adv50"], cell["adv100"])
        tables.append(table)
    if sets:
        table = Table("table2-attacks", "Table 2. Attack effectiveness (tested on 100% adv. ex.)",
                      ["Model", "Clean"] + [s["label"] for s in sets],
                      caption="Accuracy (%) on each cached adversarial test set.")
        for r in singles + ensembles:
            table.add(_model_label(r), r["clean"], *(r["sets"][s["name"]]["adv100"] for s in sets))
        tables.append(table)
    if ensembles:
        table = Table("table3-ensembles", "Table 3. Model ensemble accuracy",
                      ["Ensemble", "Clean"] + [s["label"] for s in sets],
                      caption="Accuracy (%) of ensembles (probabilities averaged over members).")
        for r in ensembles:
            table.add(" + ".join(r["members"]) or r["name"], r["clean"], *(r["sets"][s["name"]]["adv100"] for s in sets))
        tables.append(table)
    trained = [r for r in rows if r["train_attack"]]
    if trained and sets:
        table = Table("table4-cross-attack", "Table 4. Model robustness against other attacks (100% adv. ex.)",
                      ["Model (trained on)"] + [s["label"] for s in sets],
                      caption="Rows: models and the attack of their training data; columns: attack tested.")
        for r in trained:
            table.add(f"{r['name']} ({r['train_attack']})", *(r["sets"][s["name"]]["adv100"] for s in sets))
        tables.append(table)
    per_class = result.get("per_class")
    if per_class:
        for key, word, number in (("best", "Best", 5), ("worst", "Worst", 6)):
            entries = per_class[key]
            table = Table(f"table{number}-{key}-classes",
                          f"Table {number}. Top {len(entries)} {word.lower()} predicted classes "
                          f"({per_class['model']} on {per_class['set']})",
                          ["Class label", "Class", "Accuracy", "Images"], percent_columns={2})
            for e in entries:
                table.add(e["index"], e["name"], e["accuracy"], e["count"])
            tables.append(table)
    return tables
