"""Re-check a clean cache's or an adversarial set's content against the fingerprint recorded when it
was written (reads every row)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from defendr_cli.core.io.adv_fingerprint import compute_adv_fingerprint, recorded_adv_fingerprint
from defendr_cli.core.io.cache import SPLITS, ContentDigest
from defendr_cli.core.io.h5 import open_h5
from defendr_cli.core.io.reader import info_from_handle
from defendr_cli.core.progress import NullReporter, Reporter


@dataclass(frozen=True)
class VerifyReport:
    """recorded: the fingerprint attribute; computed: recomputed from the stored rows."""

    path: Path
    recorded: str
    computed: str
    rows: int
    seconds: float

    @property
    def ok(self) -> bool:
        return self.recorded == self.computed


def verify_cache(path: Path | str, *, reporter: Reporter | None = None, block_bytes: int = 64 << 20) -> VerifyReport:
    """Recompute the content fingerprint of every split, reading blocks of about `block_bytes`."""
    reporter = reporter or NullReporter()
    path = Path(path)
    started = time.perf_counter()
    digest = ContentDigest()
    with open_h5(path) as handle:
        info = info_from_handle(path, handle)
        total = sum(info.split_counts.values())
        with reporter.task("verify", total=total) as task:
            for split in SPLITS:
                images, labels = handle[split]["images"], handle[split]["labels"]
                n = images.shape[0]
                row_bytes = max(1, int(np.prod(images.shape[1:])))
                step = max(1, block_bytes // row_bytes)
                for start in range(0, n, step):
                    stop = min(n, start + step)
                    digest.update(split, images[start:stop], labels[start:stop])
                    task.advance(stop - start)
    return VerifyReport(path, info.fingerprint, digest.hexdigest(), total, time.perf_counter() - started)


def verify_adv_set(path: Path | str) -> VerifyReport:
    """Recompute an adversarial set's content fingerprint from every stored row and compare it with
    the recorded `content_fingerprint` attribute ('' when the set predates it)."""
    path = Path(path)
    started = time.perf_counter()
    recorded = recorded_adv_fingerprint(path) or ""
    computed = compute_adv_fingerprint(path)
    with open_h5(path, what="adversarial set") as handle:
        rows = int(handle["images"].shape[0])
    return VerifyReport(path, recorded, computed, rows, time.perf_counter() - started)
