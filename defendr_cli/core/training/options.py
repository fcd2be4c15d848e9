"""Options of one training run: `TrainOptions` (what every method shares) holding the method's own
`MethodOptions` (declared by each recipe in core/training/recipes/<method>.py).

Every field carries metadata the CLI and the profiles read (see `option`):
    flag   the command-line flag ('--pair-weight'; default: '--' + name with '-' for '_')
    help   one line for `defendr train METHOD --help`
    cli    False for fields that have no flag (method, method_options)

`None` for epochs / batch_size means "the default for this run" (see `resolved`): paper
settings (Adam lr 1e-3, batch 128, 15 epochs) for full-size runs; 8 epochs of batch 64 for small
ones (the quick CPU profile), as the method's options decide (`MethodOptions.small_run`: images of
<= 64 px; a classifier recipe: its resolved arch is a tiny one). Options that only a classifier
has (arch, pretrained, freeze_backbone, defense, defense_variant, passes) are the classifier
recipes' own (`ClassifierOptions`, core/training/recipes/baseline.py), so another method refuses them.

Checkpoints and resume files store `TrainOptions.to_dict()`: one flat dict of plain values, the
shared fields and the method's fields side by side (core.training.recipes.registry rebuilds the
options from it with `options_from_dict`).
"""

from __future__ import annotations

from dataclasses import MISSING, Field, asdict, dataclass, field, fields, replace
from typing import Any

from defendr_cli.core.errors import InputError
from defendr_cli.core.workspace import validate_name

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("cosine", "step", "none")
SMALL_IMAGE_PX = 64


def option(default: Any = MISSING, *, help: str, flag: str | None = None, default_factory: Any = MISSING,
           choices: tuple[str, ...] | None = None, minimum: float | None = None) -> Any:
    """A dataclass field with CLI metadata: `pair_weight: float = option(0.5, minimum=0, help="...")`.

    choices / minimum: the allowed values, checked by `MethodOptions.validate` (`check_declared`)."""
    metadata = {"help": help, "flag": flag, "choices": choices, "minimum": minimum}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def flag_of(f: Field) -> str:
    """The command-line flag of a dataclass field ('--pair-weight' for pair_weight)."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def cli_fields(cls: type) -> list[Field]:
    """The fields of an options dataclass that have a command-line flag, in declaration order."""
    return [f for f in fields(cls) if f.metadata.get("cli", True) and "help" in f.metadata]


def check_choice(flag: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"{flag} must be one of {', '.join(allowed)}, got '{value}'")


def check_at_least(flag: str, value: float | None, low: float) -> None:
    if value is not None and value < low:
        raise InputError(f"{flag} must be at least {low:g}, got {value}")


def check_declared(options: Any) -> None:
    """InputError for the first field of the dataclass `options`, in declaration order, whose value
    is outside what its `option(choices=..., minimum=...)` declares."""
    for f in fields(options):
        value = getattr(options, f.name)
        if f.metadata.get("choices") is not None:
            check_choice(flag_of(f), value, f.metadata["choices"])
        if f.metadata.get("minimum") is not None:
            check_at_least(flag_of(f), value, f.metadata["minimum"])


@dataclass
class MethodOptions:
    """Base of every recipe's own options (a dataclass of plain values, fields declared with `option`).

    Allowed choices and minimums are declared on the fields (`option(choices=..., minimum=...)`)
    and checked here; subclasses override `validate` (calling super().validate()) for any other
    check, raising InputError naming the flag and its allowed range, and `model_inputs` when the
    method reads other models.
    """

    def validate(self) -> "MethodOptions":
        """InputError on any out-of-range value; returns self."""
        check_declared(self)
        return self

    def model_inputs(self) -> list[str]:
        """Names of workspace models this method reads (e.g. dunet's target classifier)."""
        return []

    def resolved(self, image_size: int) -> "MethodOptions":
        """A copy with the method's own defaults for a cache of `image_size` px filled in (here: self)."""
        return self

    def small_run(self, image_size: int) -> bool:
        """Whether a run on `image_size` px images takes the small defaults (8 epochs of batch 64)."""
        return image_size <= SMALL_IMAGE_PX

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (lists copied)."""
        return {k: list(v) if isinstance(v, list) else v for k, v in asdict(self).items()}


@dataclass
class TrainOptions:
    """Settings every training method shares, plus the method name and its `method_options`
    (None: the method's defaults, filled in by the recipe registry)."""

    method: str = field(default="baseline", metadata={"cli": False})
    method_options: MethodOptions | None = field(default=None, metadata={"cli": False})
    name: str | None = option(None, help="Model name in models/ (default: the method).")
    epochs: int | None = option(None, help="Epochs (default 15; 8 for tiny archs or <= 64 px caches).")
    batch_size: int | None = option(None, help="Batch size, global over torchrun processes (default 128; "
                                               "64 for tiny archs or <= 64 px caches).")
    lr: float = option(1e-3, help="Learning rate.")
    optimizer: str = option("adam", help="adam | sgd (momentum 0.9).")
    weight_decay: float = option(0.0, help="Weight decay.")
    schedule: str = option("cosine", help="cosine | step (x0.1 every third) | none, per epoch.")
    seed: int = option(0, help="Seed for every random choice; recorded in artefacts.")
    data: str | None = option(None, help="Clean cache name or path (default: the workspace's only cache).")
    workers: int = option(0, help="Data-loading worker processes (0: in-process).")
    resume: bool = option(False, help="Continue an interrupted run of this name exactly.")
    force: bool = option(False, help="Overwrite an existing artefact.")

    @property
    def model_name(self) -> str:
        return self.name or self.method

    def validate(self) -> "TrainOptions":
        """InputError on any out-of-range value (shared fields, then the method's); returns self."""
        check_choice("--optimizer", self.optimizer, OPTIMIZERS)
        check_choice("--schedule", self.schedule, SCHEDULES)
        check_at_least("--epochs", self.epochs, 1)
        check_at_least("--batch-size", self.batch_size, 1)
        if not self.lr > 0:
            raise InputError(f"--lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise InputError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if self.workers < 0:
            raise InputError(f"--workers must be >= 0, got {self.workers}")
        if self.name is not None:
            validate_name(self.name)
        if self.method_options is not None:
            self.method_options.validate()
        return self

    def resolved(self, image_size: int) -> "TrainOptions":
        """A copy with the method's options resolved (a classifier's arch) and epochs / batch_size
        filled in for a cache of `image_size` px."""
        own = self.method_options.resolved(image_size) if self.method_options is not None else None
        small = (own or MethodOptions()).small_run(image_size)
        return replace(
            self,
            name=self.model_name,
            method_options=own,
            epochs=self.epochs or (8 if small else 15),
            batch_size=self.batch_size or (64 if small else 128),
        )

    def to_dict(self) -> dict[str, Any]:
        """One flat dict of plain values: the shared fields and the method's (safe for weights_only files)."""
        shared = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "method_options"}
        own = self.method_options.to_dict() if self.method_options is not None else {}
        return {**shared, **own}


SHARED_FIELDS = tuple(f.name for f in fields(TrainOptions) if f.name != "method_options")
