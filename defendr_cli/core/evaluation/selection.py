"""Choosing what `evaluate` evaluates: adversarial test sets and models (with evaluation-time defenses).

Names follow the CLI: sets by name, unique prefix or 'all'; models by name or path, where
'M+random-resize-pad' wraps model M with the randomization defense for this evaluation only.
"""

from __future__ import annotations

from defendr_cli.core.errors import InputError, MissingArtefactError
from defendr_cli.core.evaluation.subjects import EvalModel, ensemble_of, load_eval_model
from defendr_cli.core.io.adversarial import find_adv_sets
from defendr_cli.core.models.defenses import DEFENSE_NAMES, defense_spec
from defendr_cli.core.workspace import Workspace


def split_names(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def select_adv_sets(ws: Workspace, spec: str, clean_fingerprint: str, notes: list[str]) -> list:
    """Paths of the adversarial TEST sets to evaluate: 'all' (those of this cache) or names/prefixes."""
    if spec.strip().lower() in ("", "none"):
        return []
    if spec.strip().lower() == "all":
        sets = find_adv_sets(ws, split="test", skipped=notes)  # a damaged set is a note, not a crash
        other = [s.name for s in sets if s.clean_fingerprint != clean_fingerprint]
        if other:
            notes.append(f"skipped {len(other)} adversarial set(s) made from another clean cache: {', '.join(other)}")
        return [s.path for s in sets if s.clean_fingerprint == clean_fingerprint]
    paths = [path for ref in split_names(spec) for path in resolve_test_sets(ws, ref)]
    return list(dict.fromkeys(paths))


def resolve_test_sets(ws: Workspace, ref: str, *, unique: bool = False) -> list:
    """Adversarial TEST set paths from a full name, a path, or a prefix such as 'fgsm-eps8_255'.

    With `unique`, a prefix matching several sets is an InputError (give the full name).
    """
    if ws.path_for("adv", ref, create_dir=False).exists() or "/" in ref or ref.endswith(".h5"):
        return [ws.resolve("adv", ref)]
    matches = find_adv_sets(ws, split="test", prefix=ref)
    if not matches:
        raise MissingArtefactError(f"no adversarial test set named or starting with '{ref}' in {ws.adv_dir}",
                                   hint="make it with: defendr attack")
    if unique and len(matches) > 1:
        raise InputError(f"'{ref}' matches several adversarial test sets ({', '.join(m.name for m in matches)}): "
                         "give the full name")
    return [m.path for m in matches]


def split_defense_suffix(ws: Workspace, ref: str, defense: dict | None, variant: str,
                         passes: int | None = None) -> tuple[str, dict | None]:
    """'baseline+random-resize-pad' -> ('baseline', its spec) unless a model file has that very name."""
    for name in DEFENSE_NAMES:
        suffix = f"+{name}"
        if ref.endswith(suffix) and not ws.path_for("model", ref, create_dir=False).exists():
            if defense:
                raise InputError(f"'{ref}' names a defense and --defense wraps it again: use one of the two")
            return ref[: -len(suffix)], defense_spec(name, variant, passes)
    return ref, defense


def load_eval_models(ws: Workspace, refs: list[str], ensembles: list[list[str]], *, device, defense: dict | None,
                     variant: str, image_size: int, passes: int | None = None) -> list[EvalModel]:
    """Single models first (ensemble members included), then the ensembles built from them.

    A ref 'M+random-resize-pad' wraps model M with that defense (variant `variant`, `passes`
    passes or the variant's default) for this evaluation only; `defense` wraps every model. A
    checkpoint named by several refs (M and M+defense, ensemble manifests' members, a denoiser's
    classifier) is loaded once and its module shared.
    """
    loaded: dict[str, EvalModel] = {}
    memo: dict = {}  # each checkpoint read and built once, however many refs name it
    for ref in refs + [m for members in ensembles for m in members]:
        if ref not in loaded:
            base, spec = split_defense_suffix(ws, ref, defense, variant, passes)
            loaded[ref] = load_eval_model(ws, base, device=device, defense=spec, image_size=image_size, memo=memo)
    models = list(loaded.values())
    for members in ensembles:
        if len(members) < 2:
            raise InputError(f"--ensemble needs at least two members, got '{','.join(members)}'")
        models.append(ensemble_of([loaded[m] for m in members]))
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise InputError(f"two evaluated models have the same name: {', '.join(names)}")
    return models
