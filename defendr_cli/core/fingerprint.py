"""Content fingerprints: short stable hex digests of files and arrays."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

FINGERPRINT_CHARS = 16


def file_fingerprint(path: Path | str) -> str:
    """sha256 of the whole file's bytes, first 16 hex digits.

    Memoised per process on (path, inode, size, modification time), so a checkpoint that several
    composites reference, or an adversarial set read by several stages, is hashed once.
    """
    resolved = Path(path).resolve()
    stat = resolved.stat()
    return _hash_file(str(resolved), stat.st_ino, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=1024)
def _hash_file(path: str, inode: int, size: int, mtime_ns: int, chunk_bytes: int = 8 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()[:FINGERPRINT_CHARS]


def bytes_fingerprint(data: bytes | memoryview) -> str:
    """sha256 of `data`, first 16 hex digits: equal to file_fingerprint of a file holding these bytes."""
    return hashlib.sha256(data).hexdigest()[:FINGERPRINT_CHARS]


def new_digest() -> "hashlib._Hash":
    """A fresh incremental digest; feed it bytes and finish with `finish_digest`."""
    return hashlib.sha256()


def finish_digest(digest: "hashlib._Hash") -> str:
    return digest.hexdigest()[:FINGERPRINT_CHARS]
