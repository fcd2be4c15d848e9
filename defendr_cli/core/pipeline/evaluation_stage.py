"""The evaluate and gradcam stages of `defendr reproduce`.

Models evaluated: the baseline, every trained method, the randomization defense wrapped around the
models named in the profile's `randomization.wrap`, and every ensemble. The transfer protocol runs
on all of them over the baseline's cached adversarial test sets; the adaptive protocol on the
profile's `evaluate.adaptive_models` (a row name such as 'baseline+random-resize-pad' selects a
wrapped model).
"""

from __future__ import annotations

from pathlib import Path

from defendr_cli.core.attacks.eps import parse_eps_list
from defendr_cli.core.errors import InputError
from defendr_cli.core.pipeline import stages as st
from defendr_cli.core.pipeline.paper_report import reference_set, write_paper_comparison
from defendr_cli.core.stages.evaluate import EvaluateConfig, run_evaluate
from defendr_cli.core.stages.gradcam import GradcamConfig, run_gradcam

DEFENSE_NAME = "random-resize-pad"
GRADCAM_BATCH_SIZE = 32


def _model_names(env: st.StageEnv) -> list[str]:
    return ["baseline", *st.method_specs(env.settings), *env.settings.get("ensembles", {})]


def _test_sets(env: st.StageEnv) -> list[Path]:
    """The test sets the profile's attacks write (as the attack stage names them) that exist."""
    names = [planned.name for spec, splits in st.attack_specs(env.settings)
             for planned in st.planned_sets(env.settings, spec, splits) if planned.split == "test"]
    paths = [env.workspace.path_for("adv", name, create_dir=False) for name in names]
    return [p for p in paths if p.exists()]


def _gradcam_set(env: st.StageEnv) -> Path:
    """The test set of the profile's `gradcam.attack` label."""
    label = env.settings["gradcam"]["attack"]
    path = st.adv_path(env, label, "test")
    if path is None:
        raise InputError(f"the profile's gradcam.attack '{label}' is not attacked on the test split")
    return path


def evaluation_inputs(env: st.StageEnv) -> list[Path]:
    models = [env.workspace.path_for("model", name, create_dir=False) for name in _model_names(env)]
    return models + _test_sets(env)


def evaluate_config(env: st.StageEnv, report_name: str) -> EvaluateConfig:
    """Models in table order (singles, randomized wraps, ensembles) over the baseline's cached test sets;
    the adaptive sweep starts at the reference set's eps, so adaptive and transfer compare there."""
    settings = env.settings["evaluate"]
    rand = env.settings["randomization"]
    refs = ["baseline", *st.method_specs(env.settings)]
    refs += [f"{name}+{DEFENSE_NAME}" for name in rand.get("wrap", [])]
    refs += list(env.settings.get("ensembles", {}))
    return EvaluateConfig(
        models=refs, data=env.workspace.path_for("data", st.data_name(env.settings), create_dir=False),
        adv_paths=_test_sets(env), defense_variant=rand.get("variant", "paper"), passes=rand.get("passes"),
        name=report_name, seed=env.seed, batch_size=int(settings.get("batch_size", 128)),
        adaptive=bool(settings.get("adaptive", True)), adaptive_models=settings.get("adaptive_models") or None,
        eps_from_sets=[name for name in [reference_set(env.settings)] if name],
        extra_eps=parse_eps_list(",".join(settings["eps"])) if settings["eps"] else [], eot=int(settings["eot"]),
        suite=str(settings.get("suite", "auto")), attacks=[str(a) for a in settings.get("attacks", ["pgd"])],
        square_queries=settings.get("square_queries"), draws=int(settings.get("draws", 10)),
        steps=[int(s) for s in settings["steps"]], restarts=[int(r) for r in settings["restarts"]],
        subset=settings.get("subset"), report_settings=env.settings, resume=env.resume,
    )


def pipeline_evaluate(env: st.StageEnv, report_name: str) -> list[Path]:
    result = run_evaluate(env.workspace, evaluate_config(env, report_name), env.runtime, reporter=env.reporter)
    extra = write_paper_comparison(result.report_dir, result.transfer, result.adaptive, env.settings)
    return [result.files.results, result.files.markdown, *extra]


def gradcam_inputs(env: st.StageEnv) -> list[Path]:
    spec = env.settings["gradcam"]
    return [env.workspace.path_for("model", spec["model"], create_dir=False),
            _gradcam_set(env)]


def gradcam_outputs(env: st.StageEnv, report_name: str) -> list[Path]:
    """The Grad-CAM grids the report embeds (so a new grid re-renders the report)."""
    return sorted((env.workspace.dir_for("report") / report_name / "gradcam").glob("*.png"))


def pipeline_gradcam(env: st.StageEnv, report_name: str) -> list[Path]:
    spec = env.settings["gradcam"]
    config = GradcamConfig(model=spec["model"], attack=str(_gradcam_set(env)),
                           count=int(spec["count"]), seed=env.seed, batch_size=GRADCAM_BATCH_SIZE,
                           data=env.workspace.path_for("data", st.data_name(env.settings), create_dir=False),
                           folder=env.workspace.dir_for("report", create=True) / report_name / "gradcam")
    result = run_gradcam(env.workspace, config, env.runtime, reporter=env.reporter)
    return result.files or [result.folder]
