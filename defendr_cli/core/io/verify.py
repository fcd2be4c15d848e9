"""Re-check a clean cache's or an adversarial set's content against the fingerprint recorded when it
was written (reads every row)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from defendr_cli.core.errors import CorruptArtefactError, DefendrError
from defendr_cli.core.io.adv_fingerprint import DONE_DIGEST_ATTR, AdvContentDigest
from defendr_cli.core.io.adv_schema import adv_set_fields, check_adv_layout, check_pixels
from defendr_cli.core.io.adversarial import check_partial_rows, from_storage, read_adv_info
from defendr_cli.core.io.cache import SPLITS, ContentDigest
from defendr_cli.core.io.h5 import open_h5
from defendr_cli.core.io.reader import info_from_handle
from defendr_cli.core.io.files import is_regular_file
from defendr_cli.core.io.schema import damaged_file_errors, read_h5_attrs
from defendr_cli.core.progress import NullReporter, Reporter
from defendr_cli.core.workspace import Workspace


@dataclass(frozen=True)
class VerifyReport:
    """recorded: the fingerprint attribute; computed: recomputed from the stored rows."""

    path: Path
    recorded: str
    computed: str
    rows: int
    seconds: float
    problem: str = ""  # why the file could not be verified (damaged layout, bad pixels...), else ''

    @property
    def ok(self) -> bool:
        return not self.problem and self.recorded == self.computed


def verify_cache(path: Path | str, *, reporter: Reporter | None = None, block_bytes: int = 64 << 20) -> VerifyReport:
    """Recompute the content fingerprint of every split, reading blocks of about `block_bytes`."""
    reporter = reporter or NullReporter()
    path = Path(path)
    started = time.perf_counter()
    digest = ContentDigest()
    with open_h5(path) as handle, damaged_file_errors(path, "clean cache"):
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
    """Recompute an adversarial set's content fingerprint from every stored row (checking its
    attributes, layout and that every pixel is finite and in [0, 1]) and compare it with the
    recorded `content_fingerprint` attribute ('' when the set predates it). A set that fails a
    check gives a report that is not ok, with the reason in `problem`."""
    path = Path(path)
    started = time.perf_counter()
    recorded, computed, rows = "", "", 0
    try:
        with open_h5(path, what="adversarial set") as handle, damaged_file_errors(path, "adversarial set"):
            info = adv_set_fields(path, read_h5_attrs(path, handle))
            check_adv_layout(path, handle, info)
            recorded, rows = info.content_fingerprint, info.count
            digest = AdvContentDigest()
            digest.update_from_file(handle, rows, lambda start, block: check_pixels(path, from_storage(block), start))
            computed = digest.hexdigest()
    except CorruptArtefactError as exc:
        return VerifyReport(path, recorded, computed, rows, time.perf_counter() - started, problem=str(exc))
    return VerifyReport(path, recorded, computed, rows, time.perf_counter() - started)


def verify_partial_adv_set(path: Path | str) -> VerifyReport:
    """Check a partial adversarial set (`adv/.<name>.h5.partial`, left for --resume): its rows
    [0, done) must hash to the digest recorded with them (a raised `done` or edited rows do not)."""
    path = Path(path)
    started = time.perf_counter()
    digest = AdvContentDigest()
    try:
        with open_h5(path, what="partial adversarial set") as handle:
            attrs = read_h5_attrs(path, handle)
            rows = check_partial_rows(path, handle, attrs, digest)
    except CorruptArtefactError as exc:
        return VerifyReport(path, "", "", 0, time.perf_counter() - started, problem=str(exc))
    recorded = str(attrs.get(DONE_DIGEST_ATTR, "")) if rows else digest.hexdigest()
    return VerifyReport(path, recorded, digest.hexdigest(), rows, time.perf_counter() - started)


def partial_adv_files(workspace: Workspace) -> list[Path]:
    """The partial adversarial sets of the workspace (`adv/.<name>.h5.partial`, shards included)
    that are regular files, sorted."""
    folder = workspace.dir_for("adv")
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(".*.h5.partial") if is_regular_file(p))


def verify_workspace_adv_sets(workspace: Workspace, cache_fingerprint: str) -> list[VerifyReport]:
    """One report per adversarial set of the workspace made from the cache `cache_fingerprint`, per
    set that cannot be read at all (its report says why: it may be this cache's), and per partial
    file left for --resume (its rows checked against their digest)."""
    reports = []
    for name in workspace.names("adv"):
        path = workspace.path_for("adv", name, create_dir=False)
        try:
            made_from = read_adv_info(path).clean_fingerprint
        except DefendrError as exc:
            reports.append(VerifyReport(path, "", "", 0, 0.0, problem=str(exc)))
            continue
        if made_from == cache_fingerprint:
            reports.append(verify_adv_set(path))
    return reports + [verify_partial_adv_set(p) for p in partial_adv_files(workspace)]
