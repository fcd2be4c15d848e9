"""Which output of an imported model is which class of a Defendr cache.

An imported model has K outputs; a cache has C classes with ids in cache order. The mapping is a
list `indices` of length C: the model's logit for cache class i is output `indices[i]`, so the
imported module returns logits (N, C) in cache order (see ImportedClassifier). Ways to get it,
first match wins:

- `--class-map FILE`: JSON {"cache class id": output index, ...} or a two-column text file
  ("cache_class_id output_index" per line, '#' comments);
- K == 1000 and every cache class id is an ImageNet wnid: the wnid's position in the sorted
  list of the 1000 ImageNet-1k wnids (the table shipped in defendr_cli/data/) is its output;
- K == C: the identity (no mapping recorded);
- otherwise a MismatchError naming both class lists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from defendr_cli.core.data.class_names import shipped_names
from defendr_cli.core.errors import InputError, MismatchError, MissingArtefactError

IMAGENET_CLASSES = 1000
SHOW = 4


@dataclass(frozen=True)
class ClassMap:
    """indices[i] = model output of cache class i; how: 'file' | 'imagenet-wnid' | 'identity'."""

    indices: list[int]
    how: str
    source: str = ""

    def to_dict(self) -> dict:
        return {"indices": list(self.indices), "how": self.how, "source": self.source}

    def describe(self, class_ids: list[str], outputs: int) -> str:
        """'10 of 1000 outputs (imagenet-wnid): n01440764->0, n01443537->1, ...'."""
        pairs = [f"{c}->{i}" for c, i in zip(class_ids, self.indices)]
        more = ", ..." if len(pairs) > SHOW else ""
        return f"{len(self.indices)} of {outputs} outputs ({self.how}): {', '.join(pairs[:SHOW])}{more}"


def imagenet_wnids() -> list[str]:
    """The 1000 ImageNet-1k wnids in output order (sorted, as torchvision/timm heads use)."""
    return list(shipped_names())


def _few(items: list[str]) -> str:
    return ", ".join(items[:SHOW]) + (f", ... ({len(items)} in all)" if len(items) > SHOW else "")


def _pairs_without_repeats(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError(f"class {next(k for k in keys if keys.count(k) > 1)} is mapped twice")
    return dict(pairs)


def read_class_map_file(path: Path | str) -> dict[str, int]:
    """{cache class id: output index} from a JSON object or a two-column text file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingArtefactError(f"no class-map file at {path}")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            data = json.loads(text, object_pairs_hook=_pairs_without_repeats)
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object {class id: output index}")
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in data.values()):
                raise ValueError("every output index must be a whole number")
            return {str(k): v for k, v in data.items()}
        mapping: dict[str, int] = {}
        for number, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.replace(",", " ").replace("\t", " ").split()
            if len(parts) != 2:
                raise ValueError(f"line {number} needs two columns: class id, output index")
            if parts[0] in mapping:
                raise ValueError(f"line {number} maps class {parts[0]} a second time")
            mapping[parts[0]] = int(parts[1])
        return mapping
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise InputError(f"cannot read class map {path}: {exc}") from exc


def map_from_file(mapping: dict[str, int], class_ids: list[str], outputs: int, source: str) -> ClassMap:
    """The ClassMap for the cache's `class_ids`; MismatchError for ids the file lacks."""
    missing = [c for c in class_ids if c not in mapping]
    if missing:
        raise MismatchError(f"class map {source} lacks {len(missing)} of the cache's classes: {_few(missing)}")
    indices = [mapping[c] for c in class_ids]
    bad = [f"{c}->{i}" for c, i in zip(class_ids, indices) if not 0 <= i < outputs]
    if bad:
        raise InputError(f"class map {source} points outside the model's {outputs} outputs: {_few(bad)}")
    return ClassMap(indices, "file", source)


def resolve_class_map(class_ids: list[str], outputs: int, *, model_classes: list[str] | None = None,
                      mapping: dict[str, int] | None = None, source: str = "") -> ClassMap | None:
    """The mapping for a model with `outputs` logits on a cache with `class_ids` (see module doc).

    None means the identity (outputs == len(class_ids)). `model_classes` names the model's
    classes when known (only used in the mismatch message).
    """
    if mapping is not None:
        return map_from_file(mapping, class_ids, outputs, source)
    if outputs == IMAGENET_CLASSES:
        position = {w: i for i, w in enumerate(imagenet_wnids())}
        if class_ids and all(c in position for c in class_ids):
            return ClassMap([position[c] for c in class_ids], "imagenet-wnid", "ImageNet-1k wnid order")
    if outputs == len(class_ids):
        return None
    own = model_classes or (imagenet_wnids() if outputs == IMAGENET_CLASSES else [str(i) for i in range(outputs)])
    raise MismatchError(f"the model has {outputs} outputs ({_few(own)}) but the cache has {len(class_ids)} "
                        f"classes ({_few(class_ids)}); give --class-map FILE (cache class id -> output index)")
