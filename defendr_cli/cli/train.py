"""`defendr train METHOD`: train a model with one of the registered recipes -> models/<name>.pt.

Methods: baseline (CE), adv (--adv SET doubled dataset, or --online ATTACK), alp (logit pairing
with cached or online adversarial pairs), clp (clean logit pairing), lsq (logit squeezing), dunet
(guided denoiser, when available). Option groups in --help say which method reads which option.
Under torchrun it trains data-parallel (docs/distributed.md); --batch-size is the global batch.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from defendr_cli.cli.common import DataOpt, DeviceOpt, ForceOpt, JsonOpt, PrecisionOpt, SeedOpt, print_json, state
from defendr_cli.cli.distributed import stage_reporter, stage_session
from defendr_cli.core.training.options import TrainOptions

_ADV = "adv, alp, dunet"
_ONLINE = "adv, alp, dunet online"


def _split_list(values: list[str] | None) -> list[str]:
    return [item.strip() for value in values or [] for item in value.split(",") if item.strip()]


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_command(
        ctx: typer.Context,
        method: Annotated[str, typer.Argument(help="baseline | adv | alp | clp | lsq | dunet")],
        name: Annotated[str | None, typer.Option("--name", help="Model name in models/ (default: the method).")] = None,
        arch: Annotated[str | None, typer.Option("--arch", help="resnet18|34|50|101|152, tinyresnet, tinycnn (default: resnet101; tinyresnet for <= 64 px caches).")] = None,
        epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs (default 15; 8 for tiny archs).")] = None,
        batch_size: Annotated[int | None, typer.Option("--batch-size", help="Batch size, global over torchrun processes (default 128; 64 for tiny archs).")] = None,
        lr: Annotated[float, typer.Option("--lr", help="Learning rate.")] = 1e-3,
        optimizer: Annotated[str, typer.Option("--optimizer", help="adam | sgd (momentum 0.9).")] = "adam",
        weight_decay: Annotated[float, typer.Option("--weight-decay", help="Weight decay.")] = 0.0,
        schedule: Annotated[str, typer.Option("--schedule", help="cosine | step (x0.1 every third) | none, per epoch.")] = "cosine",
        pretrained: Annotated[str | None, typer.Option("--pretrained", help="torchvision state-dict file, or 'imagenet' (needs the network or the torch hub cache).")] = None,
        freeze_backbone: Annotated[bool, typer.Option("--freeze-backbone", help="Train only the last stage and the head.")] = False,
        adv: Annotated[list[str] | None, typer.Option("--adv", help=f"{_ADV}: cached adversarial sets of the train split (names or prefixes, repeat or comma-separate).")] = None,
        online: Annotated[str | None, typer.Option("--online", help=f"{_ONLINE}: attack each batch with this attack (fgsm, pgd, bim, mifgsm).")] = None,
        eps: Annotated[str, typer.Option("--eps", help=f"{_ONLINE}: eps, e.g. 4/255 (pixel units unless --eps-space normalized).")] = "4/255",
        eps_space: Annotated[str, typer.Option("--eps-space", help=f"{_ONLINE}: pixel | normalized.")] = "pixel",
        attack_steps: Annotated[int, typer.Option("--attack-steps", help=f"{_ONLINE}: steps of iterative attacks.")] = 10,
        adv_ratio: Annotated[float, typer.Option("--adv-ratio", help="adv online: share of each batch attacked.")] = 0.5,
        pair_weight: Annotated[float, typer.Option("--pair-weight", help="alp, clp: lambda of the logit-pairing MSE.")] = 0.5,
        squeeze_weight: Annotated[float, typer.Option("--squeeze-weight", help="lsq: lambda of the squared logit norm.")] = 0.05,
        guide: Annotated[str, typer.Option("--guide", help="dunet: logits | features | pixels.")] = "logits",
        target: Annotated[str, typer.Option("--target", help="dunet: frozen target classifier.")] = "baseline",
        width_mult: Annotated[float, typer.Option("--width-mult", help="dunet: denoiser width multiplier.")] = 1.0,
        defense: Annotated[str, typer.Option("--defense", help="none | random-resize-pad: inference-time defense recorded in the checkpoint.")] = "none",
        defense_variant: Annotated[str, typer.Option("--defense-variant", help="paper | competition (random-resize-pad).")] = "paper",
        passes: Annotated[int | None, typer.Option("--passes", help="Randomization passes averaged at inference.")] = None,
        seed: SeedOpt = 0,
        data: DataOpt = None,
        workers: Annotated[int, typer.Option("--workers", help="Data-loading worker processes (0: in-process).")] = 0,
        resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run of this name exactly.")] = False,
        force: ForceOpt = False,
        device: DeviceOpt = "auto",
        precision: PrecisionOpt = "fp32",
        as_json: JsonOpt = False,
    ) -> None:
        """Train METHOD on the workspace's clean cache and write models/<name>.pt (best validation epoch)."""
        from defendr_cli.core.training.loop import make_context, train

        app_state = state(ctx)
        options = TrainOptions(
            method=method, name=name, arch=arch, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
            weight_decay=weight_decay, schedule=schedule, pretrained=pretrained, freeze_backbone=freeze_backbone,
            adv=_split_list(adv), online=online, eps=eps, eps_space=eps_space, attack_steps=attack_steps,
            adv_ratio=adv_ratio, pair_weight=pair_weight, squeeze_weight=squeeze_weight, guide=guide, target=target,
            width_mult=width_mult, defense=defense, defense_variant=defense_variant, passes=passes, seed=seed,
            data=data, workers=workers, resume=resume, force=force,
        ).validate()
        with stage_session(device, precision) as (dist, runtime):
            with stage_reporter(dist, app_state.err_console, enabled=not as_json) as reporter:
                context = make_context(app_state.workspace, runtime, data, reporter, dist=dist)
                result = train(options, context)
        if not dist.is_main:
            return
        if as_json:
            print_json({"name": result.name, "path": str(result.path), "summary": result.payload["summary"],
                        "best": result.best, "history": result.history, "start_epoch": result.start_epoch,
                        "seconds": round(result.seconds, 2), "hparams": result.payload["hparams"]})
            return
        table = Table(title=f"train {method} -> {result.name}")
        for column in ("epoch", "loss", "acc", "val loss", "val acc", "lr", "s"):
            table.add_column(column, justify="right")
        for record in result.history:
            best = record["epoch"] == result.best.get("epoch")
            table.add_row(f"{record['epoch']}{' *' if best else ''}", f"{record['train_loss']:.4f}",
                          _fmt(record.get("train_acc"), "{:.1%}"), _fmt(record.get("val_loss"), "{:.4f}"),
                          _fmt(record.get("val_acc"), "{:.1%}"), f"{record['lr']:.3g}", f"{record['seconds']:.1f}")
        app_state.console.print(table)
        app_state.console.print(result.payload["summary"])
        app_state.console.print(f"wrote {result.path} in {result.seconds:.1f}s (* = best epoch, saved)")


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)
