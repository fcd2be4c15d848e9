"""Human-readable names for ImageNet wnids.

Where a name comes from, first match wins:
1. a `LOC_synset_mapping.txt` ('n01440764 tench, Tinca tinca') or `words.txt`
   ('n01440764<TAB>tench, Tinca tinca') in the source folder or up to two folders above it;
2. the ImageNet-1k table shipped in defendr_cli/data/imagenet1k_classes.txt;
3. the wnid itself.
Names are the first synonym ('tench'), or the shipped short name.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

MAPPING_FILES = ("LOC_synset_mapping.txt", "words.txt")
SHIPPED_TABLE = "imagenet1k_classes.txt"


def parse_mapping_file(path: Path) -> dict[str, str]:
    """wnid -> first synonym, from a LOC_synset_mapping.txt or words.txt (space or tab separated)."""
    names: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split("\t", 1) if "\t" in line else line.split(" ", 1)
        if len(parts) == 2 and parts[1].strip():
            names[parts[0].strip()] = parts[1].split(",")[0].strip()
    return names


@lru_cache(maxsize=1)
def shipped_names() -> dict[str, str]:
    """wnid -> short name for the 1000 ImageNet-1k classes (the table shipped with the package)."""
    text = resources.files("defendr_cli").joinpath("data", SHIPPED_TABLE).read_text(encoding="utf-8")
    table: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            wnid, short, _ = line.split("\t", 2)
            table[wnid] = short
    return table


def find_mapping_file(source: Path) -> Path | None:
    """The first LOC_synset_mapping.txt / words.txt in `source` or its two parents."""
    folder = Path(source).resolve()
    for candidate_dir in (folder, folder.parent, folder.parent.parent):
        for filename in MAPPING_FILES:
            candidate = candidate_dir / filename
            if candidate.is_file():
                return candidate
    return None


def class_names_for(wnids: list[str], source: Path | None = None) -> tuple[list[str], str]:
    """Names for `wnids` and a phrase saying where they came from."""
    local: dict[str, str] = {}
    mapping = find_mapping_file(source) if source is not None else None
    if mapping is not None:
        local = parse_mapping_file(mapping)
    shipped = shipped_names()
    names = [local.get(w) or shipped.get(w) or w for w in wnids]
    origin = f"names from {mapping}" if mapping is not None else "names from the shipped ImageNet-1k table"
    return names, origin
