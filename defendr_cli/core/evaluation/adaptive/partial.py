"""Per-model adaptive results saved as they complete, so an interrupted `evaluate --resume` reuses them.

Each finished model's AdaptiveRow is written to `<folder>/<model key>.json` (atomically) with the
settings that determine it (model key, data, subset rows, eps, grids, EOT, sanity thresholds, the
transfer sets and their file signatures). A saved row is reused only when those settings are
equal; otherwise the model is attacked again. `evaluate` keeps the folder under
reports/<name>/.partial/ and removes it once the report is written.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from defendr_cli.core.atomic import atomic_path
from defendr_cli.core.errors import DefendrError
from defendr_cli.core.evaluation.adaptive.results import AdaptiveRow
from defendr_cli.core.io.files import read_json_file
from defendr_cli.core.progress import saved_for_test

PARTIAL_DIRNAME = ".partial"


def file_signature(path: Path) -> list[Any]:
    """[path, size in bytes, mtime in ns] of a file the results depend on."""
    stat = Path(path).stat()
    return [str(path), stat.st_size, stat.st_mtime_ns]


class AdaptivePartials:
    """Saved per-model adaptive rows under `folder` (None: nothing saved or reused).

    settings: everything besides the model that the rows depend on (JSON-able). reuse: whether
    saved rows may be read (`--resume`); rows are saved either way.
    """

    def __init__(self, folder: Path | None, settings: dict[str, Any], *, reuse: bool, write: bool = True) -> None:
        self.folder = None if folder is None else Path(folder)
        self.settings = json.loads(json.dumps(settings, default=str))
        self.reuse = reuse
        self.write = write

    def _path(self, model_key: str) -> Path:
        digest = hashlib.sha256(model_key.encode()).hexdigest()[:16]
        return self.folder / f"adaptive-{digest}.json"

    def load(self, model_key: str) -> AdaptiveRow | None:
        """The saved row of `model_key` when reuse is on and its settings match, else None."""
        if self.folder is None or not self.reuse:
            return None
        path = self._path(model_key)
        try:
            saved = read_json_file(path, what="saved adaptive row", allow_nan=True)  # never a FIFO, bounded
            if saved.get("model_key") != model_key or saved.get("settings") != self.settings:
                return None
            return AdaptiveRow.from_dict(saved["row"])
        except (DefendrError, OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # missing or damaged: the model is attacked again

    def save(self, model_key: str, row: AdaptiveRow) -> None:
        """Write the row of `model_key` (atomically); counts as a saved unit for the test hook."""
        if self.folder is not None and self.write:
            self.folder.mkdir(parents=True, exist_ok=True)
            payload = {"model_key": model_key, "settings": self.settings, "row": row.to_dict()}
            with atomic_path(self._path(model_key)) as tmp:
                Path(tmp).write_text(json.dumps(payload), encoding="utf-8")
        saved_for_test()
