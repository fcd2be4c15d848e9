"""`defendr train METHOD`: train a model with one of the registered recipes -> models/<name>.pt.

One subcommand per recipe in core.training.recipes.registry, generated from the dataclasses: the
shared TrainOptions fields and the method's own options class (flag and help text from each
field's metadata). A method therefore accepts only its own flags; `defendr train alp --help` lists
them. Under torchrun it trains data-parallel (docs/distributed.md); --batch-size is the global batch.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import MISSING, Field
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from defendr_cli.cli.common import DeviceOpt, JsonOpt, PrecisionOpt, make_runtime, print_json, state, warn_eps
from defendr_cli.cli.distributed import run_stage
from defendr_cli.cli.plan import GpuOpt, PlanOpt, print_plan
from defendr_cli.core.calibration import cached_calibration
from defendr_cli.core.pipeline.command_plan import plan_train
from defendr_cli.core.pipeline.plan import check_disk
from defendr_cli.core.attacks.eps import EpsValue, parse_eps
from defendr_cli.core.errors import InputError
from defendr_cli.core.stages.train import run_train
from defendr_cli.core.training.options import TrainOptions, cli_fields, flag_of
from defendr_cli.core.training.recipes.base import RecipeSpec
from defendr_cli.core.training.recipes.registry import RECIPES, recipe_names, train_options

RUNTIME_PARAMETERS = [
    inspect.Parameter("device", inspect.Parameter.KEYWORD_ONLY, annotation=DeviceOpt, default="auto"),
    inspect.Parameter("precision", inspect.Parameter.KEYWORD_ONLY, annotation=PrecisionOpt, default="fp32"),
    inspect.Parameter("plan", inspect.Parameter.KEYWORD_ONLY, annotation=PlanOpt, default=False),
    inspect.Parameter("gpu", inspect.Parameter.KEYWORD_ONLY, annotation=GpuOpt, default="H100"),
    inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, annotation=JsonOpt, default=False),
]


class TrainGroup(TyperGroup):
    """`defendr train`: an unknown METHOD, or a flag of other methods only (`train dunet --arch
    resnet50`), is a one-line InputError (exit 1) naming the known methods or those that take it."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and not args[0].startswith("-") and self.get_command(ctx, args[0]) is None:
            raise InputError(f"unknown training method '{args[0]}': use one of {', '.join(recipe_names())}")
        if args and args[0] in RECIPES:
            check_own_flags(args[0], args[1:])
        return super().resolve_command(ctx, args)


def method_flags(method: str) -> set[str]:
    """The flags of `defendr train METHOD` that come from its own options class."""
    return {flag_of(f) for f in cli_fields(RECIPES[method].options_class)}


def check_own_flags(method: str, args: list[str]) -> None:
    """InputError naming the flags in `args` that other methods take and `method` does not, and
    the methods that take them (e.g. --arch: the classifier methods, not dunet)."""
    shared = {flag_of(f) for f in cli_fields(TrainOptions)}
    given = {arg.split("=", 1)[0] for arg in args if arg.startswith("--")}
    foreign = sorted(given - method_flags(method) - shared)
    takers = [name for name in recipe_names() if name != method and set(foreign) & method_flags(name)]
    if foreign and takers:
        raise InputError(f"`train {method}` does not take {', '.join(foreign)}: "
                         f"{'it is an option' if len(foreign) == 1 else 'they are options'} of {', '.join(takers)}")


def split_list(values: list[str] | None) -> list[str]:
    """['a,b', 'c'] -> ['a', 'b', 'c'] (repeated and comma-separated list options)."""
    return [item.strip() for value in values or [] for item in value.split(",") if item.strip()]


def option_parameter(f: Field, hint: Any, panel: str) -> inspect.Parameter:
    """The Typer parameter of one options-dataclass field (list fields: repeat or comma-separate)."""
    default = f.default_factory() if f.default_factory is not MISSING else f.default
    if typing.get_origin(hint) is list:
        hint, default = hint | None, None
    annotation = Annotated[hint, typer.Option(flag_of(f), help=f.metadata["help"], rich_help_panel=panel)]
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)


def option_parameters(cls: type, panel: str) -> list[inspect.Parameter]:
    hints = typing.get_type_hints(cls)
    return [option_parameter(f, hints[f.name], panel) for f in cli_fields(cls)]


def list_field_names(cls: type) -> set[str]:
    hints = typing.get_type_hints(cls)
    return {f.name for f in cli_fields(cls) if typing.get_origin(hints[f.name]) is list}


def make_command(spec: RecipeSpec) -> Any:
    """The Typer command function of `defendr train <spec.name>` (signature built from the dataclasses)."""
    parameters = [*option_parameters(spec.options_class, f"Options of {spec.name}"),
                  *option_parameters(TrainOptions, "Options of every method"), *RUNTIME_PARAMETERS]
    list_fields = list_field_names(TrainOptions) | list_field_names(spec.options_class)

    def command(ctx: typer.Context, **values: Any) -> None:
        device, precision, as_json = values.pop("device"), values.pop("precision"), values.pop("as_json")
        plan, gpu = values.pop("plan"), values.pop("gpu")
        for name in list_fields:
            values[name] = split_list(values[name])
        options = train_options(spec.name, values)
        online = options.method_options
        if getattr(online, "online", None):  # the online attack's eps (adv, alp, dunet)
            warn_eps([EpsValue(online.eps, parse_eps(online.eps))], online.eps_space)
        if plan:
            print_train_plan(ctx, options, device, precision, gpu, as_json)
            return
        train_and_report(ctx, options, device, precision, as_json)

    ctx_parameter = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
    command.__signature__ = inspect.Signature([ctx_parameter, *parameters])  # type: ignore[attr-defined]
    command.__annotations__ = {"ctx": typer.Context, **{p.name: p.annotation for p in parameters}, "return": None}
    command.__doc__ = f"{spec.help}\n\nWrites models/<name>.pt (best validation epoch)."
    command.__name__ = f"train_{spec.name}"
    return command


def print_train_plan(ctx: typer.Context, options: TrainOptions, device: str, precision: str, gpu: str,
                     as_json: bool) -> None:
    """`--plan`: the run's work, time, disk and memory; nothing trains (refused when it does not fit)."""
    app_state = state(ctx)
    runtime = make_runtime(device, precision)
    train_plan = plan_train(app_state.workspace, options, runtime, cached_calibration(runtime.device), gpu=gpu)
    print_plan(app_state.console, train_plan, as_json=as_json)
    check_disk(train_plan)


def train_and_report(ctx: typer.Context, options: TrainOptions, device: str, precision: str, as_json: bool) -> None:
    """Run the train stage (every torchrun rank) and print its table or JSON (rank 0)."""
    app_state = state(ctx)
    dist, result = run_stage(run_train, app_state.workspace, options, device, precision,
                             app_state.err_console, enabled=not as_json)
    if not dist.is_main:
        return
    if as_json:
        print_json({"name": result.name, "path": str(result.path), "summary": result.checkpoint.summary,
                    "best": result.best.to_dict() if result.best else {},
                    "history": [record.to_dict() for record in result.history], "start_epoch": result.start_epoch,
                    "seconds": round(result.seconds, 2), "hparams": result.checkpoint.hparams})
        return
    table = Table(title=f"train {options.method} -> {result.name}")
    for column in ("epoch", "loss", "acc", "val loss", "val acc", "lr", "s"):
        table.add_column(column, justify="right")
    for record in result.history:
        best = result.best is not None and record.epoch == result.best.epoch
        table.add_row(f"{record.epoch}{' *' if best else ''}", f"{record.train_loss:.4f}",
                      _fmt(record.train_acc, "{:.1%}"), _fmt(record.val_loss, "{:.4f}"),
                      _fmt(record.val_acc, "{:.1%}"), f"{record.lr:.3g}", f"{record.seconds:.1f}")
    app_state.console.print(table)
    app_state.console.print(result.checkpoint.summary)
    app_state.console.print(f"wrote {result.path} in {result.seconds:.1f}s (* = best epoch, saved)")


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def build_train_app() -> typer.Typer:
    """`defendr train` with one subcommand per registered recipe."""
    train_app = typer.Typer(cls=TrainGroup, no_args_is_help=True,
                            help="Train METHOD on the workspace's clean cache and write models/<name>.pt. "
                                 "Each method takes the shared options and its own (defendr train METHOD --help).")
    for spec in RECIPES.values():
        command = make_command(spec)
        train_app.command(spec.name, help=command.__doc__)(command)
    return train_app


def register(app: typer.Typer) -> None:
    app.add_typer(build_train_app(), name="train")
