"""The schema of a report's JSON files (`reports/<name>/results.json`, the phenomena list), read as
untrusted files through core.io.files (regular file, bounded size, no NaN/Infinity constants).

`read_results_file` returns the results.json object after checking the type of each top-level
key a stage reads; a JSON list where the object is expected, a string where `transfer` is, a FIFO
named results.json are ONE CorruptArtefactError naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from defendr_cli.core.errors import CorruptArtefactError
from defendr_cli.core.io.files import read_json_file

_RESULT_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "created": (str,), "summary": (str,), "settings": (dict,), "transfer": (dict, type(None)),
    "adaptive": (dict, type(None)), "tables": (list,), "figures": (list,), "timing": (dict, type(None)),
}


def read_results_file(path: Path | str) -> dict[str, Any]:
    """The results.json object at `path` (see the module docstring)."""
    path = Path(path)
    results = read_json_file(path, what="report results file", hint="make it with: defendr evaluate", allow_nan=True)
    for key, types in _RESULT_TYPES.items():
        if key in results and not isinstance(results[key], types):
            raise CorruptArtefactError(f"{path} is a damaged report results file: '{key}' is a "
                                       f"{type(results[key]).__name__}, expected {' or '.join(t.__name__ for t in types)}")
    return results


def read_phenomena_file(path: Path | str) -> list[dict[str, Any]]:
    """The phenomena list of a reproduce report: a JSON list of objects."""
    path = Path(path)
    items = read_json_file(path, what="phenomena file", expect=list)
    if not all(isinstance(item, dict) for item in items):
        raise CorruptArtefactError(f"{path} is a damaged phenomena file: every entry must be a JSON object")
    return items
