"""What a workspace holds: every artefact with its one-line summary, for `defendr ls`.

Summaries come from the artefacts themselves: the HDF5 file attribute `summary` (clean caches,
adversarial sets), the checkpoint key `summary` (core.io.checkpoint.read_checkpoint_summary:
torch.load(weights_only=True, mmap=True), so no code is unpickled and no weights are loaded), and for a report folder the
`summary` of its results.json or the first heading of its report.md. A file that cannot be read
is listed as unreadable with the reason; it never stops the listing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from defendr_cli.core.io.checkpoint import read_checkpoint_summary
from defendr_cli.core.io.files import read_small_file
from defendr_cli.core.io.h5 import open_h5
from defendr_cli.core.io.report_file import read_results_file
from defendr_cli.core.workspace import ARTEFACT_KINDS, Workspace

KIND_ORDER: tuple[str, ...] = ("data", "adv", "model", "report")
SUMMARY_CHARS = 300  # a summary is one line; a file that records more is cut, not printed whole
SUMMARY_SOURCE_BYTES = 16 << 20


@dataclass(frozen=True)
class ArtefactEntry:
    """One artefact: kind ('data'|'adv'|'model'|'report'), name, path, size in bytes, summary.

    readable is False when the summary could not be read; `summary` then says why.
    partial is True for a temporary file left by an interrupted write (`.<name>.partial-<pid>`).
    """

    kind: str
    name: str
    path: Path
    size_bytes: int
    summary: str
    readable: bool = True
    partial: bool = False

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "path": str(self.path), "size_bytes": self.size_bytes,
                "summary": self.summary, "readable": self.readable, "partial": self.partial}


def hdf5_summary(path: Path) -> str:
    with open_h5(path, what="HDF5 artefact") as handle:  # a regular file only: a FIFO would block
        value = handle.attrs.get("summary")
        if value is None:
            fmt = handle.attrs.get("format")
            raise ValueError(f"no summary attribute (format {fmt!r})" if fmt is not None else "not a Defendr file")
        return value.decode() if isinstance(value, bytes) else str(value)


def report_summary(folder: Path) -> str:
    results = folder / "results.json"
    if results.is_file():
        data = read_results_file(results)
        if data.get("summary"):
            return str(data["summary"])
    report = folder / "report.md"
    if report.is_file():
        text = read_small_file(report, what="report", max_bytes=SUMMARY_SOURCE_BYTES).decode("utf-8", "replace")
        for line in text.splitlines():
            if line.startswith("#"):
                return line.lstrip("# ").strip()
    files = [p for p in folder.rglob("*") if p.is_file()]
    return f"report folder with {len(files)} file(s)"


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _entry(kind: str, name: str, path: Path, *, partial: bool = False) -> ArtefactEntry:
    reader = {"data": hdf5_summary, "adv": hdf5_summary, "model": read_checkpoint_summary, "report": report_summary}[kind]
    try:
        size = _size(path)
    except OSError:
        size = 0
    if partial:
        return ArtefactEntry(kind, name, path, size, "partial file left by an interrupted write (safe to delete)",
                             readable=False, partial=True)
    try:
        summary = reader(path)
    except Exception as exc:  # any unreadable file is reported, not raised: `ls` must list the rest
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        return ArtefactEntry(kind, name, path, size, f"unreadable: {reason[:100]}", readable=False)
    return ArtefactEntry(kind, name, path, size, " ".join(summary.split())[:SUMMARY_CHARS])


def list_artefacts(workspace: Workspace, kinds: tuple[str, ...] = KIND_ORDER) -> list[ArtefactEntry]:
    """Every artefact of `kinds` in the workspace, grouped by kind, sorted by name."""
    entries: list[ArtefactEntry] = []
    for kind in kinds:
        for name in workspace.names(kind):
            entries.append(_entry(kind, name, workspace.path_for(kind, name, create_dir=False)))
        folder = workspace.dir_for(kind)
        suffix = ARTEFACT_KINDS[kind][1]
        if kind != "report" and folder.is_dir():
            # atomic writes leave `.<name><suffix>.partial-<pid>`; resumable attack sets and their
            # shards leave `.<name><suffix>.partial` (both hidden from Workspace.names)
            for path in sorted(folder.glob(f".*{suffix}.partial*")):
                entries.append(_entry(kind, path.name, path, partial=True))
    return entries
