"""Hostile .pt2 archives: each is refused in one line and no payload ever runs (issue 23, item 1).

The payload is a pickle whose __reduce__ opens (creates) a marker file: if torch ever unpickled it
with weights_only=False, the marker would exist.
"""

from __future__ import annotations

import io
import json
import os
import struct
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from defendr_cli.cli.app import app
from defendr_cli.core.errors import CorruptArtefactError, InputError, MissingArtefactError
from defendr_cli.core.io.checkpoint import read_checkpoint
from defendr_cli.core.models import exported as E
from defendr_cli.core.models.weights_file import read_state_dict
from defendr_cli.core.io import zip_entries as Z
from defendr_cli.core.workspace import Workspace

runner = CliRunner()
CONFIG = "data/weights/model_weights_config.json"


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pt2") / "good.pt2"
    torch.manual_seed(0)
    program = torch.export.export(Tiny().eval(), (torch.rand(2, 3, 8, 8),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, path)
    return path


def entries_of(path: Path) -> tuple[str, list[tuple[str, bytes]]]:
    with zipfile.ZipFile(path) as archive:
        root = archive.namelist()[0].split("/")[0]
        return root, [(n.split("/", 1)[1], archive.read(n)) for n in archive.namelist()]


def write_zip(dst: Path, items: list[tuple[str, bytes]], compress=zipfile.ZIP_STORED, **kw) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names we write on purpose
        with zipfile.ZipFile(dst, "w", compression=compress) as out:
            for name, blob in items:
                info = zipfile.ZipInfo(name)
                info.compress_type = compress
                with out.open(info, "w", **kw) as handle:
                    handle.write(blob)
    return dst


def pickled_config(good: Path, marker: Path) -> tuple[bytes, bytes]:
    """(a weights config whose first entry is use_pickle -> weight_evil, the payload's bytes)."""
    _, items = entries_of(good)
    config = json.loads(dict(items)[CONFIG])
    first = next(iter(config["config"]))
    config["config"][first].update({"path_name": "weight_evil", "use_pickle": True})
    buffer = io.BytesIO()
    torch.save({"x": Payload(marker)}, buffer)
    return json.dumps(config).encode(), buffer.getvalue()


def duplicate_config_archive(good: Path, dst: Path, marker: Path) -> Path:
    """The pickled config first, the benign one last: Python's zipfile reads the benign one, torch's
    reader (a sorted index) the pickled one for this layout; the old check passed it and the payload ran."""
    root, items = entries_of(good)
    evil_config, evil_blob = pickled_config(good, marker)
    benign = [(n, b) for n, b in items if n != CONFIG]
    layout = [(CONFIG, evil_config)] + benign + [(CONFIG, dict(items)[CONFIG]), ("data/weights/weight_evil", evil_blob)]
    return write_zip(dst, [(f"{root}/{n}", b) for n, b in layout])


def refused(path: Path, match: str) -> str:
    with pytest.raises(InputError, match=match) as info:
        E.load_exported_program(path)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_plain_program_loads_from_a_rebuilt_in_memory_archive(good, monkeypatch):
    seen = []
    real = torch.export.load
    monkeypatch.setattr(torch.export, "load", lambda f, **kw: seen.append(f) or real(f, **kw))
    program = E.load_exported_program(good)
    assert len(seen) == 1 and isinstance(seen[0], io.BytesIO)  # torch never opens the user's file
    with zipfile.ZipFile(seen[0]) as rebuilt:
        names = rebuilt.namelist()
    assert len(names) == len(set(names))
    x = torch.rand(3, 3, 8, 8)
    assert torch.allclose(program.module()(x), torch.export.load(good).module()(x))


def test_duplicate_entries_with_the_malicious_config_first_run_nothing(good, tmp_path):
    marker = tmp_path / "PWNED"
    dup = duplicate_config_archive(good, tmp_path / "dup.pt2", marker)
    refused(dup, "twice")
    assert not marker.exists()


def test_a_pickled_weight_alone_is_refused(good, tmp_path):
    marker = tmp_path / "PWNED"
    root, items = entries_of(good)
    evil_config, evil_blob = pickled_config(good, marker)
    rest = [(n, b) for n, b in items if n != CONFIG] + [(CONFIG, evil_config), ("data/weights/weight_evil", evil_blob)]
    refused(write_zip(tmp_path / "p.pt2", [(f"{root}/{n}", b) for n, b in rest]), "use_pickle")
    assert not marker.exists()


@pytest.mark.parametrize("bad_name", ["../escape", "/abs", "sub\\x", "a//b", "./a", "models/../models/x.json",
                                      "Models/model.json", "e\u0301.txt", "extra/\uff41"])
def test_non_normalised_or_colliding_names_are_refused(good, tmp_path, bad_name):
    root, items = entries_of(good)
    extra = [("extra/a", b"x")] if bad_name == "extra/\uff41" else []
    full = [(f"{root}/{n}", b) for n, b in items + extra]
    name = bad_name if bad_name.startswith("/") else f"{root}/{bad_name}"
    path = write_zip(tmp_path / "n.pt2", full + [(name, b"{}")])
    refused(path, "entry name|duplicate or colliding|one root folder")


def test_a_deflate_bomb_is_refused_before_anything_is_inflated(good, tmp_path, monkeypatch):
    root, items = entries_of(good)
    bomb = write_zip(tmp_path / "bomb.pt2", [(f"{root}/{n}", b) for n, b in items]
                     + [(f"{root}/extra/bomb", bytes(64 << 20))], compress=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 1 << 20
    monkeypatch.setattr(Z, "_inflate", lambda *a: pytest.fail("inflated a bomb"))
    refused(bomb, "decompression bomb")


def test_total_and_per_entry_caps(good):
    data = good.read_bytes()
    with pytest.raises(InputError, match="at most 1000"):
        E.load_exported_bytes(data, good, Z.ZipLimits(max_entry=1000))
    with pytest.raises(InputError, match="in all"):
        E.load_exported_bytes(data, good, Z.ZipLimits(max_total=len(data) // 2))
    with pytest.raises(InputError, match="larger than"):
        E.read_exported_bytes(good, Z.ZipLimits(max_file=1000))


def central_records(data: bytes) -> dict[str, int]:
    """{entry name: offset of its central directory record} (entries may hold zips of their own)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        start, infos = archive.start_dir, archive.infolist()
    offsets, at = {}, start
    for info in infos:
        assert data[at:at + 4] == b"PK\x01\x02"
        offsets[info.filename] = at
        name_len, extra_len, comment_len = struct.unpack_from("<3H", data, at + 28)
        at += 46 + name_len + extra_len + comment_len
    return offsets


def _patch_sizes(data: bytearray, name: str, size: int) -> None:
    """Set the declared uncompressed size of entry `name` in its local and central headers."""
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        local = archive.getinfo(name).header_offset
    struct.pack_into("<L", data, local + 22, size)
    struct.pack_into("<L", data, central_records(bytes(data))[name] + 24, size)


def test_a_lying_size_header_costs_only_the_declared_size(good, tmp_path):
    root, items = entries_of(good)
    path = write_zip(tmp_path / "lie.pt2", [(f"{root}/{n}", b) for n, b in items]
                     + [(f"{root}/extra/lie", bytes(4 << 20))], compress=zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    _patch_sizes(data, f"{root}/extra/lie", 100)
    with pytest.raises(InputError, match="damaged|differ"):
        E.load_exported_bytes(bytes(data), path)


def test_overlapping_records_encrypted_and_odd_methods_are_refused(good, tmp_path):
    root, items = entries_of(good)
    data = bytearray(write_zip(tmp_path / "o.pt2", [(f"{root}/{n}", b) for n, b in items]).read_bytes())
    records = list(central_records(bytes(data)).values())
    overlapped = bytearray(data)
    struct.pack_into("<L", overlapped, records[1] + 42, 0)  # the second record points at the first's bytes
    with pytest.raises(InputError, match="overlap|no local header|differ"):
        E.load_exported_bytes(bytes(overlapped), "o.pt2")
    encrypted = bytearray(data)
    struct.pack_into("<H", encrypted, records[0] + 8, 1)
    with pytest.raises(InputError, match="encrypted"):
        E.load_exported_bytes(bytes(encrypted), "e.pt2")
    bz = write_zip(tmp_path / "bz.pt2", [(f"{root}/{n}", b) for n, b in items], compress=zipfile.ZIP_BZIP2)
    refused(bz, "compression method")


def test_zip64_archives_still_load_and_truncated_ones_are_refused(good, tmp_path):
    root, items = entries_of(good)
    z64 = write_zip(tmp_path / "z64.pt2", [(f"{root}/{n}", b) for n, b in items], force_zip64=True)
    assert E.load_exported_program(z64) is not None
    data = good.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 30):
        with pytest.raises(InputError, match="zip archive|truncated|damaged"):
            E.load_exported_bytes(data[:cut], "cut.pt2")


def test_legacy_weights_unknown_entries_and_repeated_json_keys_are_refused(good, tmp_path):
    root, items = entries_of(good)
    legacy = write_zip(tmp_path / "l.pt2", [(f"{root}/{n}", b) for n, b in items + [("data/weights/model.pt", b"x")]])
    refused(legacy, "does not have: data/weights/model.pt")
    config = dict(items)[CONFIG].decode()
    repeated = config[:-1] + ', "config": {}}'
    rest = [(n, b) for n, b in items if n != CONFIG] + [(CONFIG, repeated.encode())]
    refused(write_zip(tmp_path / "r.pt2", [(f"{root}/{n}", b) for n, b in rest]), "repeated key")


def test_a_fifo_or_a_missing_file_does_not_hang(tmp_path):
    fifo = tmp_path / "x.pt2"
    os.mkfifo(fifo)
    refused(fifo, "not a regular file")
    with pytest.raises(MissingArtefactError):
        E.load_exported_program(tmp_path / "none.pt2")


def test_cli_import_of_a_duplicate_entry_archive_is_one_line_and_runs_nothing(good, tmp_path):
    marker = tmp_path / "PWNED"
    dup = duplicate_config_archive(good, tmp_path / "dup.pt2", marker)
    ws = Workspace(tmp_path / "ws")
    result = runner.invoke(app, ["--workdir", str(ws.root), "import", "x", "--exported", str(dup)])
    assert result.exit_code == 1 and "twice" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not marker.exists() and not (ws.root / "models" / "x.pt").exists()


def test_checkpoints_and_weights_files_that_are_bombs_or_duplicated_zips_are_refused(tmp_path, monkeypatch):
    torch.save(Tiny().state_dict(), tmp_path / "w.pth")
    with zipfile.ZipFile(tmp_path / "w.pth") as archive:
        items = [(n, archive.read(n)) for n in archive.namelist()]
    bomb = write_zip(tmp_path / "bomb.pth", items + [(items[0][0].split("/")[0] + "/data/99", bytes(64 << 20))],
                     compress=zipfile.ZIP_DEFLATED)
    dup = write_zip(tmp_path / "dup.pth", items[:1] + items)
    monkeypatch.setattr(Z, "_inflate", lambda *a: pytest.fail("inflated"))
    with pytest.raises(InputError, match="decompression bomb"):
        read_state_dict(bomb)
    with pytest.raises(InputError, match="twice"):
        read_state_dict(dup)
    with pytest.raises(CorruptArtefactError, match="decompression bomb"):
        read_checkpoint(bomb)
    assert set(read_state_dict(tmp_path / "w.pth")[0]) == set(Tiny().state_dict())
