"""The workspace folder that stages exchange artefacts in, and artefact naming.

Layout:
    <root>/data/<name>.h5      clean caches            (defendr prepare)
    <root>/adv/<name>.h5       adversarial sets        (defendr attack)
    <root>/models/<name>.pt    checkpoints/manifests   (defendr train / ensemble)
    <root>/reports/<name>/     tables, JSON, PNGs      (defendr evaluate / gradcam / reproduce)

Every command accepts an artefact either by name (looked up in its folder) or by path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from defendr_cli.core.errors import InputError, MissingArtefactError

DEFAULT_WORKDIR = "defendr-work"
WORKDIR_ENV = "DEFENDR_WORKDIR"

# kind -> (folder, suffix, command that makes it)
ARTEFACT_KINDS: dict[str, tuple[str, str, str]] = {
    "data": ("data", ".h5", "defendr prepare"),
    "adv": ("adv", ".h5", "defendr attack"),
    "model": ("models", ".pt", "defendr train"),
    "report": ("reports", "", "defendr evaluate"),
}


def _kind_folder(kind: str) -> property:
    """A Workspace property: the folder of artefacts of `kind` (`dir_for(kind)`, not created)."""
    return property(lambda workspace: workspace.dir_for(kind), doc=f"The folder of the {kind} artefacts.")


@dataclass(frozen=True)
class Workspace:
    """A workspace rooted at `root`. Folders are created on demand by `dir_for(..., create=True)`."""

    root: Path

    @classmethod
    def from_option(cls, workdir: str | os.PathLike | None = None) -> "Workspace":
        """--workdir, else $DEFENDR_WORKDIR, else ./defendr-work."""
        raw = workdir or os.environ.get(WORKDIR_ENV) or DEFAULT_WORKDIR
        return cls(Path(raw).expanduser())

    def dir_for(self, kind: str, *, create: bool = False) -> Path:
        folder = self.root / ARTEFACT_KINDS[kind][0]
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        return folder

    data_dir = _kind_folder("data")
    adv_dir = _kind_folder("adv")
    models_dir = _kind_folder("model")
    reports_dir = _kind_folder("report")

    def require_folder(self) -> None:
        """InputError when the workspace root exists but is not a folder (e.g. --workdir names a file)."""
        if self.root.exists() and not self.root.is_dir():
            raise InputError(f"the workspace {self.root} is a file, not a folder: give a folder with --workdir")

    def path_for(self, kind: str, name: str, *, create_dir: bool = True) -> Path:
        """Where an artefact called `name` of `kind` lives (it need not exist)."""
        _, suffix, _ = ARTEFACT_KINDS[kind]
        return self.dir_for(kind, create=create_dir) / f"{name}{suffix}"

    def names(self, kind: str) -> list[str]:
        """Names of existing artefacts of `kind`, sorted; temporary partial files are skipped."""
        folder = self.dir_for(kind)
        if not folder.is_dir():
            return []
        _, suffix, _ = ARTEFACT_KINDS[kind]
        if kind == "report":  # folders; '_predictions' and other '_'/'.' folders are caches
            return sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name[0] not in "_.")
        return sorted(
            p.name[: -len(suffix)]
            for p in folder.iterdir()
            if p.is_file() and p.name.endswith(suffix) and not p.name.startswith(".")
        )

    def resolve(self, kind: str, ref: str | os.PathLike, *, hint: str | None = None) -> Path:
        """An existing artefact from a name or a path; MissingArtefactError naming the maker.

        `hint` overrides the default 'make it with ...' command (e.g. 'defendr train alp').
        """
        folder, suffix, maker = ARTEFACT_KINDS[kind]
        ref_str = os.fspath(ref)
        as_path = Path(ref_str).expanduser()
        looks_like_path = os.sep in ref_str or (suffix and ref_str.endswith(suffix))
        if as_path.exists() and (looks_like_path or not (self.root / folder / f"{ref_str}{suffix}").exists()):
            return as_path
        candidate = self.root / folder / f"{ref_str}{suffix}"
        if candidate.exists():
            return candidate
        where = as_path if looks_like_path else candidate
        raise MissingArtefactError(
            f"no {_KIND_WORDS[kind]} '{ref_str}' at {where}", hint=f"make it with: {hint or maker}"
        )

    def default_data(self) -> Path:
        """The workspace's clean cache when there is exactly one; a clear error otherwise."""
        self.require_folder()
        names = self.names("data")
        if not names:
            raise MissingArtefactError(
                f"no clean cache in {self.data_dir}", hint="make one with: defendr prepare"
            )
        if len(names) > 1:
            raise InputError(
                f"several clean caches in {self.data_dir} ({', '.join(names)}): choose one with --data NAME"
            )
        return self.path_for("data", names[0], create_dir=False)


NAME_MAX = 100
_NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def validate_name(name: str, option: str = "--name") -> str:
    """`name` when it is a safe artefact name, else a one-line InputError naming `option`.

    Allowed: 1..100 ASCII letters, digits, '.', '_' and '-', not starting with '.' or '-', without
    '..'. So a name never leaves its folder ('/', '..'), never hides itself ('.' files are
    temporary/lock files and are skipped by `names`), never reads as an option ('-'), and needs no
    quoting in a shell: spaces are refused (they break the 'M+defense' and comma-list syntaxes and
    every copy-pasted command), as is '+' (evaluate's 'M+random-resize-pad').
    """
    text = str(name)
    if not text:
        raise InputError(f"{option} must not be empty")
    if len(text) > NAME_MAX:
        raise InputError(f"{option} is {len(text)} characters long; use at most {NAME_MAX}")
    if not _NAME_PATTERN.fullmatch(text) or ".." in text:
        raise InputError(f"{option} '{text}' is not a plain name: use letters, digits, '.', '_' and '-' "
                         f"(no '/', '..', spaces, or leading '.'/'-')")
    return text


_KIND_WORDS = {"data": "clean cache", "adv": "adversarial set", "model": "model", "report": "report"}


def format_number(value: float | Fraction | str) -> str:
    """A filename-safe label of a number: 0.12 -> '0.12', '8/255' -> '8_255', 1e-05 -> '1e-05'."""
    text = str(value).strip()
    if "/" in text:
        num, den = (part.strip() for part in text.split("/", 1))
        return f"{num}_{den}"
    return text


def adv_set_label(attack: str, eps_label: str, *, steps: int | None = None, eps_space: str = "pixel",
                  extra: str = "") -> str:
    """Label of an adversarial set (its name without model and split): `<attack>-eps<eps>[n][-s<steps>]<extra>`.

    eps_label is the eps as the user gave it ('0.12', '8/255'); a trailing 'n' marks eps given
    in normalized space (--eps-space normalized). Example: 'pgd-eps8_255-s10'. The attack stage
    makes labels through core/attacks/set_names.py (the attack's own suffix as `extra`).
    """
    label = format_number(eps_label) + ("n" if eps_space == "normalized" else "")
    parts = [attack, f"eps{label}"]
    if steps is not None:
        parts.append(f"s{steps}")
    return "-".join(parts) + extra


def labelled_set_name(label: str, source_model: str, split: str) -> str:
    """Name of the adversarial set with this label made from `source_model` on `split`."""
    return f"{label}-{source_model}-{split}"


def adv_set_name(attack: str, eps_label: str, source_model: str, split: str, *,
                 steps: int | None = None, eps_space: str = "pixel", extra: str = "") -> str:
    """Name of an adversarial set: `<attack>-eps<eps>[n][-s<steps>]<extra>-<model>-<split>`,
    e.g. 'pgd-eps8_255-s10-baseline-test' (see `adv_set_label`)."""
    label = adv_set_label(attack, eps_label, steps=steps, eps_space=eps_space, extra=extra)
    return labelled_set_name(label, source_model, split)
