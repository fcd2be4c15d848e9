"""The evaluate and gradcam stages of `defendr reproduce`.

Models evaluated: the baseline, every trained method, the randomization defense wrapped around the
models named in the profile's `randomization.wrap`, and every ensemble. The transfer protocol runs
on all of them over the baseline's cached adversarial test sets; the adaptive protocol on the
profile's `evaluate.adaptive_models` (a row name such as 'baseline+random-resize-pad' selects a
wrapped model).
"""

from __future__ import annotations

from pathlib import Path

from defendr_cli.core.pipeline import stages as st
from defendr_cli.core.pipeline.paper_report import write_paper_comparison

DEFENSE_NAME = "random-resize-pad"


def _model_names(env: st.StageEnv) -> list[str]:
    return ["baseline", *st.method_specs(env.settings), *env.settings.get("ensembles", {})]


def _test_sets(env: st.StageEnv) -> list[Path]:
    paths = [st.adv_path(env, st.attack_set_prefix(spec), "test") for spec, _ in st.attack_specs(env.settings)]
    return [p for p in paths if p.exists()]


def evaluation_inputs(env: st.StageEnv) -> list[Path]:
    models = [env.workspace.path_for("model", name, create_dir=False) for name in _model_names(env)]
    return models + _test_sets(env)


def load_models(env: st.StageEnv) -> list:
    """EvalModels in table order: singles, randomized wraps, ensembles."""
    from defendr_cli.core.evaluation.selection import load_eval_models

    rand = env.settings["randomization"]
    refs = ["baseline", *st.method_specs(env.settings)]
    refs += [f"{name}+{DEFENSE_NAME}" for name in rand.get("wrap", [])]
    refs += list(env.settings.get("ensembles", {}))
    return load_eval_models(env.workspace, refs, [], device=env.runtime.device, defense=None,
                            variant=rand.get("variant", "paper"), passes=rand.get("passes"),
                            image_size=int(env.settings["data"]["image_size"]))


def run_evaluate(env: st.StageEnv, report_name: str) -> list[Path]:
    from defendr_cli.core.attacks.eps import parse_eps_list
    from defendr_cli.core.evaluation.adaptive import run_adaptive, sweep_eps
    from defendr_cli.core.evaluation.predictions import PREDICTIONS_DIRNAME
    from defendr_cli.core.evaluation.report import write_report
    from defendr_cli.core.evaluation.transfer import run_transfer

    settings = env.settings["evaluate"]
    folder = env.workspace.dir_for("report", create=True) / report_name
    data_path = env.workspace.path_for("data", st.data_name(env.settings), create_dir=False)
    models = load_models(env)
    test_sets = _test_sets(env)
    batch_size = int(settings.get("batch_size", 128))
    transfer = run_transfer(models, data_path, test_sets, runtime=env.runtime,
                            cache_dir=env.workspace.reports_dir / PREDICTIONS_DIRNAME,
                            seed=env.seed, batch_size=batch_size, reporter=env.reporter)
    adaptive = None
    if settings.get("adaptive", True):
        wanted = settings.get("adaptive_models") or [m.name for m in models]
        chosen = [m for m in models if m.name in wanted]
        # the reference set's eps first, so adaptive and transfer compare at the same eps
        reference = st.adv_path_name(env.settings["checks"]["reference_set"], "test")
        eps_values = sweep_eps([s for s in transfer["adv_sets"] if s["name"] == reference],
                               parse_eps_list(",".join(settings["eps"])))
        adaptive = run_adaptive(chosen, data_path, runtime=env.runtime, eps_values=eps_values,
                                steps=[int(s) for s in settings["steps"]],
                                restarts=[int(r) for r in settings["restarts"]], eot=int(settings["eot"]),
                                subset=settings.get("subset"), seed=env.seed, batch_size=batch_size,
                                transfer_sets=test_sets, reporter=env.reporter)
    files = write_report(folder, name=report_name, transfer=transfer, adaptive=adaptive, settings=env.settings)
    extra = write_paper_comparison(folder, transfer, adaptive, env.settings)
    return [files.results, files.markdown, *extra]


def gradcam_inputs(env: st.StageEnv) -> list[Path]:
    spec = env.settings["gradcam"]
    return [env.workspace.path_for("model", spec["model"], create_dir=False),
            st.adv_path(env, spec["attack"], "test")]


def gradcam_outputs(env: st.StageEnv, report_name: str) -> list[Path]:
    """The Grad-CAM grids the report embeds (so a new grid re-renders the report)."""
    return sorted((env.workspace.dir_for("report") / report_name / "gradcam").glob("*.png"))


def run_gradcam_stage(env: st.StageEnv, report_name: str) -> list[Path]:
    from defendr_cli.core.evaluation.subjects import load_eval_model
    from defendr_cli.core.explain.paired import run_gradcam

    spec = env.settings["gradcam"]
    folder = env.workspace.dir_for("report", create=True) / report_name / "gradcam"
    model = load_eval_model(env.workspace, spec["model"], device=env.runtime.device)
    data_path = env.workspace.path_for("data", st.data_name(env.settings), create_dir=False)
    result = run_gradcam(model, data_path, st.adv_path(env, spec["attack"], "test"), folder,
                         runtime=env.runtime, count=int(spec["count"]), seed=env.seed, reporter=env.reporter)
    return [Path(p) for p in result.get("files", [])] or [folder]
