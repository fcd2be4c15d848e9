"""Writing an ensemble checkpoint: a manifest that references its members by fingerprint.

`create_ensemble(workspace, name, members)` loads every member once (they must build and share
class list and image size) and writes models/<name>.pt of kind "ensemble" with no weights of its
own; core.models.ensemble.build_ensemble rebuilds it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from defendr_cli import __version__
from defendr_cli.core.atomic import check_writable
from defendr_cli.core.errors import InputError
from defendr_cli.core.io.checkpoint import save_checkpoint
from defendr_cli.core.io.checkpoint_record import Checkpoint, Provenance
from defendr_cli.core.models.ensemble import COMBINE_RULES, check_compatible, normalized_weights
from defendr_cli.core.models.loading import load_model
from defendr_cli.core.models.references import make_reference
from defendr_cli.core.workspace import Workspace


def create_ensemble(workspace: Workspace, name: str, members: Sequence[str], *,
                    weights: Sequence[float] | None = None, combine: str = "probs",
                    force: bool = False) -> tuple[Path, Checkpoint]:
    """Write models/<name>.pt, a manifest referencing `members` (names or paths) by fingerprint.

    Every member is loaded once to check it builds; members must share class list and image
    size. Returns (path, the manifest written). ArtefactExistsError when the file exists and not `force`.
    """
    if not name or "/" in name or name.startswith("."):
        raise InputError(f"invalid ensemble name '{name}': use a plain name such as 'best'")
    members = [m.strip() for m in members if m and m.strip()]
    if len(members) < 2:
        raise InputError(f"an ensemble needs at least two members, got {len(members)}: {', '.join(members) or 'none'}")
    if len(set(members)) != len(members):
        raise InputError(f"ensemble members are repeated: {', '.join(members)} (use --weights to weigh one more)")
    if combine not in COMBINE_RULES:
        raise InputError(f"unknown ensemble combine rule '{combine}': use one of {', '.join(COMBINE_RULES)}")
    weights_list = normalized_weights(weights, len(members))
    out = workspace.path_for("model", name)
    check_writable(out, force=force)
    loaded = [load_model(workspace, member) for member in members]
    if any(m.path.resolve() == out.resolve() for m in loaded):
        raise InputError(f"ensemble '{name}' would overwrite its own member {out}: choose another name")
    data = check_compatible(members, [m.checkpoint for m in loaded])
    parents = tuple(make_reference(workspace, "member", m.path, m.fingerprint) for m in loaded)
    member_names = [p.name for p in parents]
    weight_text = "equal weights" if weights is None else "weights " + ",".join(f"{w:.3g}" for w in weights_list)
    manifest = Checkpoint(
        kind="ensemble", name=name,
        summary=(f"ensemble of {', '.join(member_names)} ({combine}, {weight_text}); "
                 f"{len(data.class_ids or [])} classes, {data.image_size}px"),
        method="ensemble", config={"members": member_names, "weights": weights_list, "combine": combine},
        state_dict={}, data=data, hparams={"combine": combine, "weights": weights_list}, history=[], best=None,
        provenance=Provenance(seed=None, software_version=__version__,
                              created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), parents=parents),
    )
    save_checkpoint(out, manifest, force=force)
    return out, manifest
