"""The models an evaluation looks at: loaded checkpoints, optionally wrapped by an evaluation-time
defense, or ensembles built on the spot from several checkpoints.

`EvalModel.key` identifies what is evaluated (checkpoint fingerprint + defense) for the
prediction cache; `train_attack` is the attack a model was trained on (for Table 4), read from
its checkpoint (core.io.checkpoint_record.Checkpoint).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from defendr_cli.core.attacks.set_names import label_of_set
from defendr_cli.core.errors import CorruptArtefactError
from defendr_cli.core.evaluation.predictions import safe_key
from defendr_cli.core.io.adversarial import read_adv_info
from defendr_cli.core.io.checkpoint_record import Checkpoint
from defendr_cli.core.models.loading import load_model
from defendr_cli.core.models.defenses import wrap_defense
from defendr_cli.core.models.ensemble import Ensemble
from defendr_cli.core.models.randomization import RandomResizePad
from defendr_cli.core.workspace import Workspace


@dataclass
class EvalModel:
    """A model under evaluation: pixels (N,3,H,W) in [0,1] -> logits or log-probabilities (N,K).

    name: shown in tables; kind: 'classifier' | 'denoised' | 'randomized' | 'ensemble';
    fingerprint: of the checkpoint (or of the members for an on-the-spot ensemble);
    defense: evaluation-time defense spec or None; method: training method when known;
    train_attack: label of the training attack ('fgsm-eps8_255') or None.
    """

    name: str
    module: nn.Module
    fingerprint: str
    kind: str = "classifier"
    defense: dict | None = None
    method: str | None = None
    train_attack: str | None = None
    members: list[str] = field(default_factory=list)
    checkpoint: Checkpoint | None = field(default=None, repr=False)  # None: an ensemble built on the spot

    @property
    def key(self) -> str:
        """Cache key: name, fingerprint and defense (e.g. 'baseline-ab12cd-none')."""
        defense = "none"
        if self.defense:
            defense = f"{self.defense.get('name')}.{self.defense.get('variant')}.{self.defense.get('passes')}"
        return safe_key(self.name, self.fingerprint, defense)

    @property
    def is_randomized(self) -> bool:
        """True when the module contains a random resize-pad (its predictions depend on the seed)."""
        return any(isinstance(m, RandomResizePad) for m in self.module.modules())

    def cache_key(self, seed: int, batch_size: int) -> str:
        """`key`, plus seed and batch size for randomized models (one random size per batch)."""
        return f"{self.key}-s{seed}-b{batch_size}" if self.is_randomized else self.key

    @property
    def is_ensemble(self) -> bool:
        return self.kind == "ensemble" or bool(self.members)

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "fingerprint": self.fingerprint,
                "method": self.method, "train_attack": self.train_attack,
                "defense": self.defense, "members": self.members}


def _set_label(workspace: Workspace, name: str) -> str:
    """The label of the adversarial set `name` from its stored attributes (core/attacks/set_names.py);
    the name itself when the set is gone, unreadable or made by an attack this build lacks."""
    path = workspace.path_for("adv", name, create_dir=False)
    try:
        return (label_of_set(read_adv_info(path)) if path.exists() else None) or name
    except CorruptArtefactError:
        return name


def training_attack(checkpoint: Checkpoint, workspace: Workspace) -> str | None:
    """The adversarial sets a model was trained on, as set labels joined by '+', or None.

    The sets are the provenance parents whose role mentions 'adv' (else hparams 'adv'); each is
    labelled from its stored attributes (`_set_label`), never by parsing its name.
    """
    names = [p.name for p in checkpoint.provenance.parents if "adv" in p.role]
    if not names:
        adv = checkpoint.hparams.get("adv") or []
        names = [a for a in adv.split(",") if a] if isinstance(adv, str) else [str(a) for a in adv]
    labels = list(dict.fromkeys(_set_label(workspace, name) for name in names if name))
    return "+".join(labels) if labels else None


def load_eval_model(workspace: Workspace, ref: str, *, device: torch.device,
                    defense: dict | None = None, image_size: int | None = None,
                    memo: dict | None = None) -> EvalModel:
    """Load checkpoint `ref` (name or path) and wrap it with `defense` when given; `memo`: see
    core.models.loading.load_model (one evaluation reads and builds each checkpoint once)."""

    loaded = load_model(workspace, ref, device=device, memo=memo)
    module = loaded.module
    checkpoint = loaded.checkpoint
    name = loaded.name
    if defense:
        size = image_size or int(checkpoint.data.image_size)
        module = wrap_defense(module, defense, size).to(device)
        name = f"{name}+{defense['name']}"
    members = [p.name for p in checkpoint.parents_with_role("member")] if loaded.kind == "ensemble" else []
    module.eval()
    return EvalModel(name=name, module=module, fingerprint=loaded.fingerprint, kind=loaded.kind,
                     defense=defense, method=checkpoint.method, train_attack=training_attack(checkpoint, workspace),
                     members=members, checkpoint=checkpoint)


def ensemble_of(models: list[EvalModel], *, name: str | None = None) -> EvalModel:
    """An ensemble (the paper's probability-averaging rule) of already loaded models."""

    names = [m.name for m in models]
    module = Ensemble([m.module for m in models], names=names).eval()
    fingerprint = safe_key(*(m.fingerprint[:8] for m in models))
    return EvalModel(name=name or "+".join(names), module=module, fingerprint=fingerprint,
                     kind="ensemble", members=names)
