"""Content fingerprints: short stable hex digests of files and arrays."""

from __future__ import annotations

import hashlib
from pathlib import Path

FINGERPRINT_CHARS = 16


def file_fingerprint(path: Path | str, *, chunk_bytes: int = 8 << 20) -> str:
    """sha256 of the whole file's bytes, first 16 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()[:FINGERPRINT_CHARS]


def new_digest() -> "hashlib._Hash":
    """A fresh incremental digest; feed it bytes and finish with `finish_digest`."""
    return hashlib.sha256()


def finish_digest(digest: "hashlib._Hash") -> str:
    return digest.hexdigest()[:FINGERPRINT_CHARS]
