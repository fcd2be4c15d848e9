"""A user's zip archive read once, checked, and returned as {entry name: bytes}, or refused.

Why: two zip readers can see two different archives in one file. Python's zipfile returns the LAST
of two entries with the same name, torch's reader the FIRST; names that differ only by case,
Unicode normalisation, a backslash or a '..' are one file to some readers and two to others; a
few hundred KB of deflate can expand to gigabytes; entries can share (overlap) compressed bytes.
So the checks below refuse every ambiguity instead of choosing a reading, and the caller passes
on only the bytes returned here (never the file again):

- the file is a regular file of at most `max_file` bytes, read in one go (`read_regular_file`);
- entry names are normalised: relative, '/'-separated, no empty, '.' or '..' component, no
  backslash, NUL or control character, Unicode NFC; no two names equal after NFKC + casefold
  (which covers exact duplicates); the name in the central directory is the local header's;
- entries are stored or deflated (no encryption, no other method), their local records lie
  inside the file and do not overlap;
- declared sizes are capped per entry (`max_entry`) and in total (`max_total`), and a large entry
  may not claim more than `max_ratio` times its compressed size: all refused before anything is
  decompressed. Decompression then streams through zipfile, which stops at the declared size and
  checks the CRC, so a lying header costs at most the declared (capped) size.

Every refusal is an InputError "refusing <what> <where>: <reason>" (one line).
"""

from __future__ import annotations

import io
import os
import stat
import struct
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from defendr_cli.core.errors import InputError, MissingArtefactError

LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
LOCAL_SIGNATURE = b"PK\x03\x04"
READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class ZipLimits:
    """Caps in bytes; `max_ratio` applies to entries over `ratio_floor` decompressed bytes."""

    max_file: int = 4 << 30
    max_entry: int = 3 << 30
    max_total: int = 4 << 30
    max_entries: int = 100_000
    max_ratio: int = 100
    ratio_floor: int = 1 << 20


DEFAULT_LIMITS = ZipLimits()


def _refuse(what: str, where: Path | str, reason: str) -> InputError:
    return InputError(f"refusing {what} {where}: {reason}")


def read_regular_file(path: Path, what: str, limits: ZipLimits = DEFAULT_LIMITS) -> bytes:
    """The whole file's bytes (one read); InputError unless a regular file of at most max_file bytes."""
    try:
        info = os.stat(path)
    except FileNotFoundError as exc:
        raise MissingArtefactError(f"no {what} at {path}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise _refuse(what, path, "it is not a regular file")
    if info.st_size > limits.max_file:
        raise _refuse(what, path, f"it is larger than {limits.max_file} bytes")
    with open(path, "rb") as handle:
        data = handle.read(limits.max_file + 1)
    if len(data) > limits.max_file:
        raise _refuse(what, path, f"it is larger than {limits.max_file} bytes")
    return data


def name_problem(name: str) -> str | None:
    """Why `name` is not a normalised relative entry name, or None when it is."""
    if not name:
        return "an empty entry name"
    if "\\" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        return f"entry name {name!r} holds a backslash or a control character"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return f"entry name {name!r} is absolute"
    body = name[:-1] if name.endswith("/") else name
    if any(part in ("", ".", "..") for part in body.split("/")):
        return f"entry name {name!r} has an empty, '.' or '..' component"
    if unicodedata.normalize("NFC", name) != name:
        return f"entry name {name!r} is not in Unicode normal form NFC"
    return None


def check_names(infos: list[zipfile.ZipInfo]) -> str | None:
    """The first naming problem of the archive (see module docstring), or None."""
    seen: dict[str, str] = {}
    for info in infos:
        if info.orig_filename != info.filename:
            return f"entry name {info.orig_filename!r} holds a NUL or another separator"
        problem = name_problem(info.filename)
        if problem:
            return problem
        key = unicodedata.normalize("NFKC", info.filename.rstrip("/")).casefold()
        if key in seen:
            same = "twice" if seen[key] == info.filename else f"as {seen[key]!r} and {info.filename!r}"
            return f"it holds the entry {info.filename!r} {same} (duplicate or colliding names)"
        seen[key] = info.filename
    return None


def check_layout(data: bytes, infos: list[zipfile.ZipInfo], limits: ZipLimits) -> str | None:
    """The first problem with methods, sizes, ratios or record placement, or None (nothing inflated)."""
    if len(infos) > limits.max_entries:
        return f"it holds {len(infos)} entries (at most {limits.max_entries})"
    spans, total = [], 0
    for info in infos:
        if info.flag_bits & 0x1:
            return f"entry {info.filename!r} is encrypted"
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            return f"entry {info.filename!r} uses compression method {info.compress_type} (stored or deflate only)"
        if info.file_size > limits.max_entry:
            return f"entry {info.filename!r} expands to {info.file_size} bytes (at most {limits.max_entry})"
        if info.file_size > limits.ratio_floor and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            return (f"entry {info.filename!r} expands {info.file_size} bytes from {info.compress_size} "
                    f"(more than {limits.max_ratio}x: a decompression bomb?)")
        total += info.file_size
        header = data[info.header_offset:info.header_offset + LOCAL_HEADER.size]
        if len(header) < LOCAL_HEADER.size or header[:4] != LOCAL_SIGNATURE:
            return f"entry {info.filename!r} has no local header where the directory says (truncated?)"
        fields = LOCAL_HEADER.unpack(header)
        end = info.header_offset + LOCAL_HEADER.size + fields[-2] + fields[-1] + info.compress_size
        if end > len(data):
            return f"entry {info.filename!r} runs past the end of the file (truncated?)"
        spans.append((info.header_offset, end, info.filename))
    if total > limits.max_total:
        return f"its entries expand to {total} bytes in all (at most {limits.max_total})"
    spans.sort()
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        if start < end:
            return f"entries {first!r} and {second!r} overlap in the file"
    return None


def _inflate(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    out = bytearray()
    with archive.open(info) as stream:  # stops at the declared size, checks the CRC at the end
        while chunk := stream.read(READ_CHUNK):
            out += chunk
            if len(out) > info.file_size:
                raise zipfile.BadZipFile("more data than declared")
    return bytes(out)


def check_zip_container(data: bytes, what: str, where: Path | str, limits: ZipLimits = DEFAULT_LIMITS) -> None:
    """Names, sizes, ratios and placement of a torch.save zip in `data` checked without inflating
    anything (torch's own reader then inflates); data that is no zip (torch's legacy format) passes."""
    if not data.startswith(LOCAL_SIGNATURE):
        return
    _open_checked(data, what, where, limits)[0].close()


def _open_checked(data: bytes, what: str, where: Path | str,
                  limits: ZipLimits) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """The open archive in `data` and its entries, once names, sizes, ratios and placement pass
    (nothing inflated); the caller closes it. Refused (closed) when unreadable or when a check fails."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error) as exc:
        raise _refuse(what, where, f"it is not a readable zip archive ({exc})") from exc
    problem = check_names(infos) or check_layout(data, infos, limits)
    if problem:
        archive.close()
        raise _refuse(what, where, problem)
    return archive, infos


def read_zip_entries(data: bytes, what: str, where: Path | str,
                     limits: ZipLimits = DEFAULT_LIMITS) -> dict[str, bytes]:
    """{entry name: decompressed bytes} of the zip archive in `data` (directory entries left out)."""
    archive, infos = _open_checked(data, what, where, limits)
    entries: dict[str, bytes] = {}
    with archive:
        for info in infos:
            if info.is_dir():
                if info.file_size:
                    raise _refuse(what, where, f"directory entry {info.filename!r} holds data")
                continue
            try:
                entries[info.filename] = _inflate(archive, info)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError,
                    NotImplementedError, RuntimeError) as exc:
                raise _refuse(what, where, f"entry {info.filename!r} is damaged ({exc})") from exc
    return entries
