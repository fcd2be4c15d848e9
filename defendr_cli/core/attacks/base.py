"""What every attack shares: the result type, the model context, goals, gradients and success.

An attack takes a model mapping pixels (N, 3, H, W) in [0, 1] to logits (N, K), clean images and
their labels (N,) int64, and returns `AttackResult(adv, success)`. Gradients come from
`torch.autograd.grad` on the input only; while an attack runs the model is in eval mode (unless
`eval_mode=False`) and its parameters do not require grad, and both are restored afterwards.
Forward/backward passes run under `runtime.autocast()` while the perturbed images stay fp32.
Nothing in the step loops reads a tensor value on the host (no `.item()`, no data-dependent
Python branches), so GPU attacks never stall on a sync.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from defendr_cli.core.attacks.counting import on_rows
from defendr_cli.core.attacks.losses import get_loss
from defendr_cli.core.errors import InputError
from defendr_cli.core.runtime import Runtime

TARGET_MODES = ("none", "given", "random", "least-likely")
LABEL_MODES = ("true", "predicted")


@dataclass
class AttackResult:
    """adv: float32 (N, 3, H, W) in [0, 1]; success: bool (N,) (untargeted: prediction differs
    from the attacked label; targeted: prediction equals the target; None only when the caller
    asked to skip the check); adv_pred: int64 (N,) predicted classes on `adv`; targets: int64 (N,)
    the targets of a targeted attack, else None. broken_at_iteration / restart: int64 (N,), filled
    by attacks that can tell (APGD, APGD-T, FAB, FAB-T, Square): the first iteration (1-based; 0 =
    the run's start point) at which the image was misclassified, and the run that did it (APGD-T
    and FAB-T count runs over targets: (target rank - 1) * restarts + restart); -1 for images the
    attack did not break (or that were misclassified before it); None when the attack cannot tell."""

    adv: torch.Tensor
    success: torch.Tensor | None
    adv_pred: torch.Tensor | None = None
    targets: torch.Tensor | None = None
    broken_at_iteration: torch.Tensor | None = None
    restart: torch.Tensor | None = None

    def with_progress(self, iteration: torch.Tensor, restart: torch.Tensor) -> AttackResult:
        """This result with `broken_at_iteration` and `restart` (int64 (N,), -1: not broken) set."""
        self.broken_at_iteration, self.restart = iteration.long(), restart.long()
        return self


@dataclass
class Goal:
    """What the attack optimises: `classes` are the labels to move away from (untargeted) or the
    targets to reach (targeted), int64 (N,)."""

    classes: torch.Tensor
    targeted: bool


def normalize_target_mode(targeted: bool | str) -> str:
    """False/'none' -> 'none'; True/'given' -> 'given'; 'random'; 'least-likely' (or 'll')."""
    if targeted is False or targeted is None:
        return "none"
    if targeted is True:
        return "given"
    mode = str(targeted).strip().lower().replace("_", "-")
    mode = {"ll": "least-likely", "leastlikely": "least-likely", "false": "none", "true": "given"}.get(mode, mode)
    if mode not in TARGET_MODES:
        raise InputError(f"unknown target mode '{targeted}': use one of {', '.join(TARGET_MODES)}")
    return mode


@contextlib.contextmanager
def frozen_model(model: nn.Module, *, eval_mode: bool = True) -> Iterator[nn.Module]:
    """Eval mode (per submodule) and requires_grad=False on parameters, restored on exit."""
    modes = [(module, module.training) for module in model.modules()]
    flags = [(param, param.requires_grad) for param in model.parameters()]
    try:
        if eval_mode:
            model.eval()
        for param, _ in flags:
            param.requires_grad_(False)
        yield model
    finally:
        for module, training in modes:
            module.training = training
        for param, flag in flags:
            param.requires_grad_(flag)


class AttackContext:
    """The model, runtime and loss one attack call uses; made by `attack_context`.

    loss None: a context that only classifies (`goal`, `result`), e.g. the attack stage's own.
    """

    def __init__(self, model: nn.Module, runtime: Runtime | None, loss: str | None) -> None:
        self.model = model
        self.runtime = runtime
        self.loss_fn = get_loss(loss) if loss is not None else None

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Images as fp32 (channels_last on CUDA runtimes), detached."""
        images = images.detach().float()
        if self.runtime is not None and self.runtime.channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def autocast(self) -> contextlib.AbstractContextManager:
        return self.runtime.autocast() if self.runtime is not None else contextlib.nullcontext()

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (N, K) float32 without a graph."""
        return model_logits(self.model, self.runtime, images)

    def gradient(self, adv: torch.Tensor, goal: Goal, eot: int = 1) -> torch.Tensor:
        """d(sum of per-example losses)/d(adv), averaged over `eot` forward passes (fp32)."""
        total = None
        for _ in range(eot):
            x = adv.detach().requires_grad_(True)
            with torch.enable_grad():
                with self.autocast():
                    logits = self.model(x)
                loss = self.loss_fn(logits, goal.classes, goal.targeted).sum()
                (grad,) = torch.autograd.grad(loss, x)
            total = grad if total is None else total + grad
        return total if eot == 1 else total / eot

    def losses(self, adv: torch.Tensor, goal: Goal) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example loss (N,) and predictions (N,) on `adv`, without a graph."""
        logits = self.logits(adv)
        return self.loss_fn(logits, goal.classes, goal.targeted), logits.argmax(dim=1)

    def start(self, images: torch.Tensor, labels: torch.Tensor, *, targeted: bool | str = False,
              targets: torch.Tensor | None = None, label_mode: str = "true",
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, Goal]:
        """What every attack starts from: the prepared clean images (`prepare`) and their `goal`."""
        clean = self.prepare(images)
        return clean, self.goal(clean, labels, targeted=targeted, targets=targets, label_mode=label_mode,
                                generator=generator)

    def goal(self, images: torch.Tensor, labels: torch.Tensor, *, targeted: bool | str = False,
             targets: torch.Tensor | None = None, label_mode: str = "true",
             generator: torch.Generator | None = None, clean_logits: torch.Tensor | None = None) -> Goal:
        """Resolve label mode and target mode into the classes the loss uses.

        label_mode 'predicted' replaces labels by the model's clean predictions (no label leaking).
        Targets: 'given' uses `targets`; 'random' draws a class != label uniformly (from
        `generator`); 'least-likely' takes the clean logits' argmin. `clean_logits` (N, K): the
        model's logits on `images` when the caller has them already (saves a forward pass).
        """
        if label_mode not in LABEL_MODES:
            raise InputError(f"unknown label mode '{label_mode}': use one of {', '.join(LABEL_MODES)}")
        mode = normalize_target_mode(targeted)
        labels = labels.to(images.device, torch.long)
        if clean_logits is None and (label_mode == "predicted" or mode == "least-likely"):
            clean_logits = self.logits(images)
        if label_mode == "predicted":
            labels = clean_logits.argmax(dim=1)
        if mode == "none":
            return Goal(labels, False)
        if mode == "given":
            if targets is None:
                raise InputError("a targeted attack with given targets needs `targets`")
            return Goal(targets.to(images.device, torch.long), True)
        if mode == "least-likely":
            return Goal(clean_logits.argmin(dim=1), True)
        num_classes = self.num_classes(images, clean_logits)
        return Goal(random_targets(labels, num_classes, generator), True)

    def num_classes(self, images: torch.Tensor, clean_logits: torch.Tensor | None) -> int:
        if clean_logits is None:
            with on_rows(self.model, torch.zeros(1, dtype=torch.long, device=images.device)):
                clean_logits = self.logits(images[:1])
        return int(clean_logits.shape[1])

    def result(self, adv: torch.Tensor, goal: Goal, predictions: torch.Tensor | None = None) -> AttackResult:
        """AttackResult for final images `adv` (predictions computed unless given)."""
        if predictions is None:
            predictions = self.logits(adv).argmax(dim=1)
        success = predictions == goal.classes if goal.targeted else predictions != goal.classes
        return AttackResult(adv.detach(), success, predictions,
                            goal.classes if goal.targeted else None)

    def unchecked(self, adv: torch.Tensor, goal: Goal) -> AttackResult:
        """AttackResult without the success check (success and adv_pred None)."""
        return AttackResult(adv.detach(), None, None, goal.classes if goal.targeted else None)


def model_logits(model: nn.Module, runtime: Runtime | None, images: torch.Tensor) -> torch.Tensor:
    """Logits (N, K) float32 of `model` on `images` without a graph, under `runtime`'s autocast."""
    autocast = runtime.autocast() if runtime is not None else contextlib.nullcontext()
    with torch.no_grad(), autocast:
        return model(images).float()


def random_targets(labels: torch.Tensor, num_classes: int, generator: torch.Generator | None) -> torch.Tensor:
    """A uniformly random class different from each label, int64 (N,) on the labels' device."""
    gen_device = generator.device if generator is not None else labels.device
    offset = torch.randint(1, num_classes, labels.shape, generator=generator, device=gen_device)
    return (labels + offset.to(labels.device)) % num_classes


@contextlib.contextmanager
def attack_context(model: nn.Module, runtime: Runtime | None = None, *, loss: str = "ce",
                   eval_mode: bool = True) -> Iterator[AttackContext]:
    """Freeze `model` (see `frozen_model`) and yield the AttackContext for one attack call."""
    with frozen_model(model, eval_mode=eval_mode):
        yield AttackContext(model, runtime, loss)


def check_inputs(images: torch.Tensor, labels: torch.Tensor) -> None:
    """Shapes only (values are not read: that would sync a GPU)."""
    if images.dim() != 4:
        raise InputError(f"attack inputs must be (N, C, H, W) images, got shape {tuple(images.shape)}")
    if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
        raise InputError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")


def check_steps(steps: int, restarts: int = 1, eot: int = 1) -> None:
    if steps < 1 or restarts < 1 or eot < 1:
        raise InputError(f"steps, restarts and eot must be >= 1 (got {steps}, {restarts}, {eot})")


def check_target_classes(n_target_classes: int) -> None:
    """The targeted attacks (APGD-T, FAB-T) try at least one target class per image."""
    if n_target_classes < 1:
        raise InputError(f"n_target_classes must be >= 1, got {n_target_classes}")
