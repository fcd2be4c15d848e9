"""Shared CLI state and options: the workspace, device/precision, seed, --json, --force.

Commands receive `ctx: typer.Context` and read `state(ctx)`; option types are Annotated aliases
so every command spells them the same way.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from defendr_cli.core.attacks.eps import EpsValue, eps_in_pixels, eps_warning
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.workspace import Workspace


@dataclass
class AppState:
    workspace: Workspace
    debug: bool = False
    console: Console = field(default_factory=lambda: Console(stderr=False))
    err_console: Console = field(default_factory=lambda: Console(stderr=True))


def state(ctx: typer.Context) -> AppState:
    """The AppState set by the root callback (a default one when a command runs standalone)."""
    root = ctx.find_root()
    if root.obj is None:
        root.obj = AppState(workspace=Workspace.from_option(None))
    return root.obj


def make_runtime(device: str, precision: str) -> Runtime:
    return Runtime.create(device, precision)


def warn_eps(values: list[EpsValue], space: str = "pixel", *, command: str = "attack") -> None:
    """One 'warning: ...' line on stderr per eps that is legal but probably a mistake (eps_warning).
    `command`: 'evaluate' has no --eps-space, so its warning does not suggest one."""
    for eps in values:
        message = eps_warning(eps.label, eps_in_pixels(eps.value, space), space,
                              normalized_option=command != "evaluate")
        if message:
            typer.echo(f"warning: {message}", err=True)


def print_report_paths(console: Console, markdown: Path, details: str, html: Path | None) -> None:
    """The closing lines of a command that writes a report: its markdown file (with `details` in
    parentheses) and its self-contained HTML page."""
    console.print(f"report: {markdown}  ({details})")
    console.print(f"page: {html}  (one file, opens offline)")


def print_json(payload: Any) -> None:
    """Machine-readable output on stdout (no rich markup)."""
    typer.echo(json.dumps(payload, indent=2, sort_keys=False, default=str))


def config_parameters(config_class: type, options: dict[str, Any]) -> list[inspect.Parameter]:
    """Keyword-only Typer parameters for fields of the dataclass `config_class`, in the order of
    `options` (field name -> the help text of its option, or an Annotated option type such as
    ForceOpt): type and default are the field's, the flag is '--' + its name with '-' for '_'."""
    hints = typing.get_type_hints(config_class)
    defaults = {f.name: f.default for f in dataclasses.fields(config_class)}
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=defaults[name],
                              annotation=Annotated[hints[name], typer.Option("--" + name.replace("_", "-"), help=spec)]
                              if isinstance(spec, str) else spec)
            for name, spec in options.items()]


def with_options(command: Callable[..., None], parameters: list[inspect.Parameter]) -> Callable[..., None]:
    """`command(ctx, **values)` as Typer sees it: `ctx` and then `parameters`, in order."""
    ctx_parameter = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
    command.__signature__ = inspect.Signature([ctx_parameter, *parameters])  # type: ignore[attr-defined]
    command.__annotations__ = {"ctx": typer.Context, **{p.name: p.annotation for p in parameters}, "return": None}
    return command


DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N]")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="fp32 | bf16 | fp16 (autocast for forward/backward)")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for every random choice; recorded in artefacts.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite an existing artefact.")]
DataOpt = Annotated[
    str | None,
    typer.Option("--data", help="Clean cache name or path (default: the workspace's only cache)."),
]
