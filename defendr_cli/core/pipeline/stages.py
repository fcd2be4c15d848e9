"""The stages of `defendr reproduce`, each a plain function over resolved settings.

Every stage function (`pipeline_<stage>`, beside the `run_<stage>` of core/stages it calls) takes a `StageEnv` (workspace, runtime, settings, reporter, resume flag) and
returns the list of files it produced. `reproduce.py` decides which stages are current (ledger)
and runs the others in order; these functions only call the library's public entry points, the
same ones the individual commands use.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from defendr_cli.core.attacks.eps import parse_eps_list
from defendr_cli.core.data.prepare import cache_name
from defendr_cli.core.errors import InputError
from defendr_cli.core.models.pretrained import frozen_random_backbone_warning, imagenet_weights_location, missing_weights_line
from defendr_cli.core.progress import Reporter
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.stages import attack_config
from defendr_cli.core.stages.attack import run_attack
from defendr_cli.core.stages.attack_config import AttackStageConfig, PlannedSet
from defendr_cli.core.stages.ensemble import EnsembleConfig, run_ensemble
from defendr_cli.core.stages.prepare import SYNTHETIC, PrepareConfig, run_prepare
from defendr_cli.core.stages.train import run_train
from defendr_cli.core.training.options import TrainOptions
from defendr_cli.core.training.recipes.registry import method_option_names
from defendr_cli.core.training.recipes.registry import train_options as recipe_train_options
from defendr_cli.core.training.resume import resume_path
from defendr_cli.core.workspace import Workspace, format_number


@dataclass
class StageEnv:
    workspace: Workspace
    runtime: Runtime
    settings: dict[str, Any]
    reporter: Reporter
    resume: bool = False

    @property
    def seed(self) -> int:
        return int(self.settings.get("seed", 0))


# ---------------------------------------------------------------- names shared by several stages

def data_name(settings: dict[str, Any]) -> str:
    """The clean cache the profile makes, named by `prepare`'s own rule ('synthetic-c10-n300-32px')."""
    data = settings["data"]
    kind = "synthetic" if data["source"] == "synthetic" else "imagenet"
    return cache_name(kind, int(data["classes"]), int(data["per_class"]), int(data["image_size"]),
                      resize=str(data.get("resize", "stretch")), seed=int(settings.get("seed", 0)))


def attack_stage_config(settings: dict[str, Any], spec: dict[str, Any], splits: list[str], *,
                        resume: bool = False) -> AttackStageConfig:
    """The `attack` stage config of one of the profile's attacks (`attack_specs`), on the baseline."""
    return AttackStageConfig(
        attack=spec["attack"], eps=parse_eps_list(str(spec["eps"])), eps_space=spec.get("eps_space", "pixel"),
        steps=spec.get("steps"), model="baseline", data=data_name(settings), splits=splits,
        batch_size=int(settings["evaluate"].get("batch_size", 128)), seed=int(settings.get("seed", 0)),
        # resuming keeps a complete set and continues a partial one; otherwise rewrite
        resume=resume, force=not resume,
    )


def planned_sets(settings: dict[str, Any], spec: dict[str, Any], splits: list[str]) -> list[PlannedSet]:
    """The sets one of the profile's attacks writes, as the attack stage names them."""
    return attack_config.planned_sets(attack_stage_config(settings, spec, splits), "baseline")


def attack_labels(settings: dict[str, Any], spec: dict[str, Any], splits: list[str]) -> list[str]:
    """The labels of the sets one of the profile's attacks writes (one per eps), e.g. ['fgsm-eps8_255']."""
    return list(dict.fromkeys(p.label for p in planned_sets(settings, spec, splits)))


def adv_set_name(settings: dict[str, Any], label: str, split: str) -> str | None:
    """The name of the set with this label (e.g. 'pgd-eps8_255-s10') that the profile's attacks
    write on `split` (None when they make this label on other splits only); InputError when no
    attack of the profile makes it."""
    planned = [p for spec, splits in attack_specs(settings) for p in planned_sets(settings, spec, splits)]
    if label not in {p.label for p in planned}:
        raise InputError(f"the profile names the adversarial set '{label}', which none of its attacks makes "
                         f"(they make {', '.join(dict.fromkeys(p.label for p in planned))})")
    return next((p.name for p in planned if p.label == label and p.split == split), None)


def adv_path(env: StageEnv, label: str, split: str) -> Path | None:
    """The file of the profile's set with this label on `split` (see `adv_set_name`)."""
    name = adv_set_name(env.settings, label, split)
    return None if name is None else env.workspace.path_for("adv", name, create_dir=False)


def method_specs(settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """model name -> its training spec (the method defaults to the model name; an optional
    'precision' trains that model alone in another precision, see `training_runtime`)."""
    return {name: {"method": name, **spec} for name, spec in settings["methods"].items()}


BUDGET_KEYS = ("epochs",)  # train.<key> a user shortens a run with; a method's own value wins


def preflight_notes(settings: dict[str, Any]) -> list[str]:
    """Lines to show before anything runs: ImageNet weights missing from this machine (one line
    saying where to put the file and how to run without it), a frozen random backbone, and every
    `methods.<name>` key that overrides a `train.<key>` (so `--set train.epochs=1` does not reach it)."""
    model = settings["model"]
    notes = []
    if model.get("pretrained") == "imagenet":
        _, cached = imagenet_weights_location(str(model["arch"]))
        if not cached.is_file():
            notes.append(f"not on this machine (downloaded at train:baseline when online): "
                         f"{missing_weights_line(str(model['arch']))}")
    warning = frozen_random_backbone_warning(str(model["arch"]), model.get("pretrained"),
                                             bool(model.get("freeze_backbone")))
    if warning:
        notes.append(f"{warning} (--set model.freeze_backbone=false trains it all)")
    for name, spec in settings["methods"].items():
        for key in BUDGET_KEYS:
            if key in spec and key in settings["train"] and spec[key] != settings["train"][key]:
                notes.append(f"methods.{name}.{key}={spec[key]} overrides train.{key}={settings['train'][key]} "
                             f"for {name} (change it with --set methods.{name}.{key}=...)")
    return notes


# ---------------------------------------------------------------------------------- the stages

def pipeline_prepare(env: StageEnv) -> list[Path]:
    data = env.settings["data"]
    source = str(data["source"])
    # a synthetic source draws images at size: the profile's resize applies to folders only
    resize = "stretch" if source == SYNTHETIC else str(data.get("resize", "stretch"))
    config = PrepareConfig(source=source, classes=int(data["classes"]), per_class=int(data["per_class"]),
                           split=str(data["split"]), image_size=int(data["image_size"]), resize=resize,
                           seed=env.seed, force=True, name=data_name(env.settings))
    result = run_prepare(env.workspace, config, reporter=env.reporter)
    for note in result.notes:
        env.reporter.note(note)
    return [Path(result.path)]


def train_options(env: StageEnv, model_name: str, spec: dict[str, Any]) -> TrainOptions:
    """TrainOptions for `model_name` from the profile's model/train blocks and its `methods.<name>`
    dict, which may set shared options (epochs, lr, ...) and the method's own (recipe options
    dataclass); any other key is an InputError naming the method and its allowed options. The
    model block (arch, pretrained, freeze_backbone) goes to the methods that train a classifier."""
    settings = env.settings
    method = spec.get("method", model_name)
    model = settings["model"]
    classifier = dict(arch=model["arch"], pretrained=model.get("pretrained"),
                      freeze_backbone=bool(model.get("freeze_backbone")))
    values: dict[str, Any] = dict(
        name=model_name, **{k: v for k, v in classifier.items() if k in method_option_names(method)},
        epochs=int(settings["train"]["epochs"]), batch_size=int(settings["train"]["batch_size"]),
        lr=float(settings["train"]["lr"]), optimizer=settings["train"]["optimizer"],
        weight_decay=float(settings["train"].get("weight_decay", 0.0)), schedule=settings["train"]["schedule"],
        seed=env.seed, data=data_name(settings), resume=env.resume, force=True,
    )
    overrides = {k: v for k, v in spec.items() if k not in ("method", "precision")}
    if "adv" in overrides:
        overrides["adv"] = [adv_set_name(settings, label, "train") or label for label in overrides["adv"]]
    return recipe_train_options(method, {**values, **overrides}, where=f"profile methods.{model_name}")


def check_train_settings(env: StageEnv) -> None:
    """Build every training run's options now: an out-of-range or unknown setting is an InputError
    before any stage runs (prepare included), not after an hour of attacks."""
    train_options(env, "baseline", {"method": "baseline"})
    for name, spec in method_specs(env.settings).items():
        train_options(env, name, spec)


def training_inputs(env: StageEnv, model_name: str, spec: dict[str, Any]) -> list[Path]:
    """Files a training run reads: the clean cache, its cached adversarial sets, its target."""
    inputs = [env.workspace.path_for("data", data_name(env.settings), create_dir=False)]
    for label in spec.get("adv", []):
        train, val = adv_path(env, label, "train"), adv_path(env, label, "val")
        inputs += [train] if train is not None else []
        if val is not None and val.exists():
            inputs.append(val)
    for model in train_options(env, model_name, spec).method_options.model_inputs():
        inputs.append(env.workspace.path_for("model", model, create_dir=False))
    return inputs


def training_runtime(env: StageEnv, spec: dict[str, Any]) -> Runtime:
    """The run's runtime, with the training precision when the profile sets one: the model's
    `methods.<name>.precision`, else `train.precision`. Training only: attacks and evaluation keep
    the run's precision, so every reported number is computed as before."""
    precision = spec.get("precision") or env.settings["train"].get("precision")
    return replace(env.runtime, precision=str(precision)) if precision else env.runtime


def pipeline_train(env: StageEnv, model_name: str, spec: dict[str, Any]) -> list[Path]:
    options = train_options(env, model_name, spec)
    if options.resume and not resume_path(env.workspace, model_name).exists():
        options = replace(options, resume=False)  # nothing interrupted: start this run afresh
    result = run_train(env.workspace, options, training_runtime(env, spec), reporter=env.reporter)
    best = result.best.to_dict() if result.best else {}
    env.reporter.note(f"trained {model_name}: {_fmt_metrics(best)} in {result.seconds:.0f}s")
    return [Path(result.path)]


def attack_specs(settings: dict[str, Any]) -> list[tuple[dict[str, Any], list[str]]]:
    """(attack spec, splits): the training attacks on every split, the extra ones on test only."""
    specs = [(spec, list(settings["attack_splits"])) for spec in settings["attacks"]]
    specs += [(spec, ["test"]) for spec in settings.get("extra_test_attacks", [])]
    return specs


def pipeline_attack(env: StageEnv, spec: dict[str, Any], splits: list[str]) -> list[Path]:
    config = attack_stage_config(env.settings, spec, splits, resume=env.resume)
    results = run_attack(env.workspace, config, env.runtime, reporter=env.reporter)
    for item in results:
        env.reporter.note(f"{item.name}: accuracy {item.clean_accuracy:.1%} -> {item.adv_accuracy:.1%}")
    return [Path(item.path) for item in results]


def pipeline_ensemble(env: StageEnv, name: str, members: list[str]) -> list[Path]:
    result = run_ensemble(env.workspace, EnsembleConfig(name=name, members=list(members), force=True))
    return [result.path]


def _fmt_metrics(metrics: dict[str, Any]) -> str:
    parts = [f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return " ".join(parts[:6])


__all__ = ["StageEnv", "data_name", "attack_stage_config", "planned_sets", "adv_set_name", "adv_path", "method_specs",
           "format_number"]
