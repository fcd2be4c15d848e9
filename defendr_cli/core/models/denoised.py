"""A denoised classifier: a denoiser (DUNET) in front of a classifier, usable like any classifier.

`DenoisedClassifier(denoiser, classifier)(x) = classifier(denoiser(x))`, pixels (N,3,H,W) in
[0, 1] -> logits (N, K). Gradients flow through both parts (white-box attacks see the whole
defense). `.denoiser` and `.classifier` stay reachable, and `.last_conv_stage` is the classifier's,
so Grad-CAM and the feature-guided loss hook the classifier behind the denoiser.

`freeze(module)` puts a module in eval mode and turns off its parameters' gradients: the guided
denoiser's target classifier is frozen this way (its weights never change while the denoiser
trains). A DenoisedClassifier keeps its classifier in eval mode even when `.train()` is called.

Checkpoint kind "denoised" (written by the `dunet` training recipe): config {"denoiser":
DUNetConfig dict, "target": {name, fingerprint}}, state_dict = the denoiser's weights only, and
provenance.parents holds the same target reference with role "target". `build_denoised`
(the 'denoised' entry of core.models.loading.KIND_BUILDERS) reloads the target classifier and fails with
MismatchError when the target checkpoint changed since the denoiser was trained.
"""

from __future__ import annotations

import torch
from torch import nn

from defendr_cli.core.errors import CorruptArtefactError
from defendr_cli.core.io.checkpoint_record import Checkpoint, Reference
from defendr_cli.core.models.dunet import DUNet, DUNetConfig
from defendr_cli.core.models.references import load_reference
from defendr_cli.core.workspace import Workspace


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode and requires_grad=False on every parameter; returns the module."""
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


class DenoisedClassifier(nn.Module):
    """classifier(denoiser(x)); the classifier is frozen (always eval mode, no parameter grads)."""

    def __init__(self, denoiser: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.classifier = freeze(classifier)

    @property
    def last_conv_stage(self) -> nn.Module:
        """The classifier's last convolutional stage (for Grad-CAM and feature guidance)."""
        return self.classifier.last_conv_stage

    def train(self, mode: bool = True) -> "DenoisedClassifier":
        super().train(mode)
        self.classifier.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.denoiser(x))


def denoised_config(denoiser: DUNet, target_reference: Reference) -> dict:
    """The `config` of a denoised checkpoint: denoiser architecture + target reference."""
    return {"denoiser": {"arch": "dunet", **denoiser.config.to_dict()},
            "target": {"name": target_reference.name, "fingerprint": target_reference.fingerprint}}


def _target_reference(checkpoint: Checkpoint, owner: str) -> Reference:
    """The target classifier's reference: the provenance parent of role 'target', else (older
    checkpoints) the config's `target` {name, fingerprint}."""
    references = checkpoint.parents_with_role("target")
    if references:
        return references[0]
    target = checkpoint.config.get("target") or {}
    if not isinstance(target, dict) or not target.get("name"):
        raise CorruptArtefactError(f"{owner} does not name its target classifier")
    if not isinstance(target.get("fingerprint"), str):
        raise CorruptArtefactError(f"{owner} does not record its target classifier's fingerprint")
    return Reference("target", str(target["name"]), target["fingerprint"])


def build_denoised(checkpoint: Checkpoint, context) -> DenoisedClassifier:
    """Builder of kind 'denoised': DUNET from config + state_dict, target reloaded and checked.

    `context` is a core.models.loading.BuildContext (workspace, device, load).
    """
    workspace = context.workspace or Workspace.from_option(None)
    device = context.device
    owner = f"denoiser '{checkpoint.name}'"
    config = checkpoint.config
    target = load_reference(workspace, _target_reference(checkpoint, owner), owner=owner, load=context.load).module
    denoiser_config = dict(config.get("denoiser") or {})
    if denoiser_config.pop("arch", "dunet") != "dunet":
        raise CorruptArtefactError(f"{owner} has an unknown denoiser architecture")
    denoiser = DUNet(DUNetConfig.from_dict(denoiser_config))
    try:
        denoiser.load_state_dict(checkpoint.state_dict)
    except (KeyError, RuntimeError) as exc:
        raise CorruptArtefactError(f"{owner}: weights do not fit its DUNET config: "
                                   f"{str(exc).splitlines()[0]}") from exc
    return DenoisedClassifier(denoiser, target).to(device)

