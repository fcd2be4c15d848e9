"""`defendr attack NAME --eps LIST`: adversarial sets from a saved model (NAME: any registered attack).

Thin layer over core.stages.attack.run_attack: parses options, shows progress and a summary table.
Options an attack has beyond --steps/--step-size/--random-start/--restarts reach it as
`--option KEY=VALUE` (typed like the attack function's default). Under torchrun the ranks attack
disjoint shards and rank 0 assembles the sets (docs/distributed.md).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from defendr_cli.cli.common import (
    DataOpt,
    DeviceOpt,
    ForceOpt,
    JsonOpt,
    PrecisionOpt,
    SeedOpt,
    make_runtime,
    print_json,
    state,
    warn_eps,
)
from defendr_cli.cli.distributed import run_stage
from defendr_cli.cli.plan import GpuOpt, PlanOpt, print_plan
from defendr_cli.core.calibration import cached_calibration
from defendr_cli.core.pipeline.command_plan import plan_attack
from defendr_cli.core.pipeline.plan import check_disk
from defendr_cli.core.attacks.eps import parse_eps, parse_eps_list
from defendr_cli.core.attacks.registry import ATTACKS, attack_names
from defendr_cli.core.stages.attack import AttackStageConfig, parse_option_pairs, run_attack, validate_config


def _splits(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _attack_help() -> str:
    """'fgsm | bim (i-fgsm, ifgsm) | ...' from the registry."""
    return " | ".join(name + (f" ({', '.join(ATTACKS[name].aliases)})" if ATTACKS[name].aliases else "")
                      for name in attack_names())


def _taking(option: str) -> str:
    """'bim/mifgsm/pgd': the registered attacks that take `option`."""
    return "/".join(name for name in attack_names() if option in ATTACKS[name].options)


def attack_command(
    ctx: typer.Context,
    attack: Annotated[str, typer.Argument(help=_attack_help())],
    eps: Annotated[str, typer.Option("--eps", help="Comma list of eps, e.g. 0.06,0.12 or 8/255.")],
    eps_space: Annotated[str, typer.Option("--eps-space", help="pixel (eps on [0,1] pixels) | normalized "
                                           "(the paper's convention: eps*std per channel).")] = "pixel",
    steps: Annotated[int | None, typer.Option("--steps", help=f"Iterations ({_taking('steps')}; "
                                              "default: the attack's, 10 for the built-in ones).")] = None,
    step_size: Annotated[str | None, typer.Option("--step-size", help="Step size in the eps space (default: the "
                                                  "attack's own, e.g. pgd 2.5*eps/steps).")] = None,
    random_start: Annotated[bool | None, typer.Option("--random-start/--no-random-start",
                                                      help=f"Uniform random start ({_taking('random_start')}; "
                                                      "default on).")] = None,
    restarts: Annotated[int | None, typer.Option("--restarts", help=f"Restarts ({_taking('restarts')}); the "
                                                 "strongest per image is kept.")] = None,
    option: Annotated[list[str] | None, typer.Option("--option", "-o", help="Another option of the attack as "
                                                     "KEY=VALUE, e.g. eot=4 (repeatable).")] = None,
    labels: Annotated[str, typer.Option("--labels", help="true | predicted (avoids label leaking).")] = "true",
    targeted: Annotated[str, typer.Option("--targeted", help="none | random | least-likely")] = "none",
    loss: Annotated[str, typer.Option("--loss", help="ce | margin (CW-style), or a loss the attack adds")] = "ce",
    model: Annotated[str, typer.Option("--model", help="Source model name or path.")] = "baseline",
    data: DataOpt = None,
    split: Annotated[str, typer.Option("--split", help="Clean split(s) to attack, comma list.")] = "test",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per batch (halved on GPU OOM).")] = 64,
    dtype: Annotated[str, typer.Option("--dtype", help="float16 (default) | uint8 storage.")] = "float16",
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run; keep finished sets.")] = False,
    force: ForceOpt = False,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
    plan: PlanOpt = False,
    gpu: GpuOpt = "H100",
    as_json: JsonOpt = False,
) -> None:
    """Write one adversarial set per (attack, eps, split) to adv/, with a preview PNG beside each."""
    app_state = state(ctx)
    config = validate_config(AttackStageConfig(
        attack=attack, eps=parse_eps_list(eps), eps_space=eps_space, steps=steps,
        step_size=None if step_size is None else parse_eps(step_size, "--step-size"), random_start=random_start,
        restarts=restarts, label_mode=labels, targeted=targeted, loss=loss, model=model, data=data,
        splits=_splits(split), batch_size=batch_size, dtype=dtype, resume=resume, force=force, seed=seed,
        options=parse_option_pairs(option or [])))
    warn_eps(config.eps, eps_space)
    if plan:
        runtime = make_runtime(device, precision)
        attack_plan = plan_attack(app_state.workspace, config, runtime, cached_calibration(runtime.device), gpu=gpu)
        print_plan(app_state.console, attack_plan, as_json=as_json)
        check_disk(attack_plan)
        return
    dist, results = run_stage(run_attack, app_state.workspace, config, device, precision,
                              app_state.err_console, enabled=not as_json)
    if not dist.is_main:
        return
    if as_json:
        print_json([r.to_dict() for r in results])
        return
    table = Table(title=f"{config.attack} on {model} ({dist.device.type}, {precision})")
    for column in ("set", "eps", "images", "clean acc", "adv acc", "success", "status"):
        table.add_column(column, justify="left" if column == "set" else "right",
                         overflow="fold" if column == "set" else "ellipsis")
    for r in results:
        table.add_row(r.name, r.eps_label + ("n" if eps_space == "normalized" else ""), str(r.count),
                      f"{r.clean_accuracy:.1%}", f"{r.adv_accuracy:.1%}", f"{r.success_rate:.1%}", r.status)
    app_state.console.print(table)
    app_state.console.print(f"sets in {app_state.workspace.adv_dir} (preview PNG beside each)")


def register(app: typer.Typer) -> None:
    app.command("attack")(attack_command)
