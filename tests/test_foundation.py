"""Workspace naming/resolution, atomic writes, runtime choices and the CLI error edge."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from defendr_cli.cli.app import app
from defendr_cli.core.atomic import atomic_path, partial_path
from defendr_cli.core.errors import ArtefactExistsError, InputError, MissingArtefactError
from defendr_cli.core.runtime import Runtime, resolve_device, seed_everything
from defendr_cli.core.workspace import Workspace, adv_set_name, format_number


def test_adv_set_names_are_filename_safe():
    assert adv_set_name("fgsm", "0.12", "baseline", "test") == "fgsm-eps0.12-baseline-test"
    assert adv_set_name("pgd", "8/255", "alp", "train", steps=10) == "pgd-eps8_255-s10-alp-train"
    assert adv_set_name("fgsm", "0.3", "baseline", "test", eps_space="normalized") == "fgsm-eps0.3n-baseline-test"
    assert format_number("8/255") == "8_255"


def test_resolve_by_name_and_path(tmp_path):
    ws = Workspace(tmp_path / "ws")
    target = ws.path_for("model", "alp")
    target.write_bytes(b"x")
    assert ws.resolve("model", "alp") == target
    assert ws.resolve("model", str(target)) == target
    assert ws.names("model") == ["alp"]
    with pytest.raises(MissingArtefactError) as info:
        ws.resolve("model", "clp", hint="defendr train clp")
    assert "defendr train clp" in str(info.value)


def test_default_data_needs_exactly_one_cache(tmp_path):
    ws = Workspace(tmp_path)
    with pytest.raises(MissingArtefactError):
        ws.default_data()
    ws.path_for("data", "a").write_bytes(b"")
    assert ws.default_data().name == "a.h5"
    ws.path_for("data", "b").write_bytes(b"")
    with pytest.raises(InputError):
        ws.default_data()


def test_workspace_env_default(monkeypatch, tmp_path):
    monkeypatch.setenv("DEFENDR_WORKDIR", str(tmp_path / "envws"))
    assert Workspace.from_option(None).root == tmp_path / "envws"
    assert Workspace.from_option(tmp_path / "flag").root == tmp_path / "flag"


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    final = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash")
    assert not final.exists()
    assert not partial_path(final).exists()
    with atomic_path(final) as tmp:
        tmp.write_bytes(b"whole")
    assert final.read_bytes() == b"whole"
    with pytest.raises(ArtefactExistsError):
        with atomic_path(final, force=False):
            pass
    assert final.read_bytes() == b"whole"


def test_runtime_choices():
    assert resolve_device("cpu").type == "cpu"
    runtime = Runtime.create("cpu", "bf16")
    assert runtime.autocast_dtype == torch.bfloat16
    assert runtime.channels_last and not Runtime.create("cpu", "fp32").channels_last
    with runtime.autocast():
        out = torch.nn.Linear(4, 4)(torch.ones(2, 4))
    assert out.dtype == torch.bfloat16
    with pytest.raises(InputError):
        Runtime.create("cpu", "fp16")
    with pytest.raises(InputError):
        Runtime.create("cpu", "fp64")
    a = seed_everything(3)
    b = seed_everything(3)
    assert torch.equal(torch.rand(3, generator=a), torch.rand(3, generator=b))


def test_cli_version_and_missing_artefact_is_one_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and "defendr" in result.output
    result = runner.invoke(app, ["--workdir", str(tmp_path), "info", "nope"])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1


def test_allocator_tuning_applies_on_linux_glibc():
    import sys

    from defendr_cli.core.memory import tune_allocator

    assert tune_allocator() is sys.platform.startswith("linux")


def test_file_fingerprint_follows_content_changes(tmp_path):
    import os

    from defendr_cli.core.fingerprint import file_fingerprint

    path = tmp_path / "weights.pt"
    path.write_bytes(b"one")
    first = file_fingerprint(path)
    assert file_fingerprint(path) == first
    path.write_bytes(b"two")
    os.utime(path, ns=(1, 1))  # even with an old timestamp, the size/mtime key changes
    assert file_fingerprint(path) != first


def test_runtime_memory_format_forces_channels_last_on_or_off():
    assert not Runtime().channels_last and Runtime(precision="bf16").channels_last  # auto
    cpu_last = Runtime(memory_format="channels_last")
    assert cpu_last.channels_last
    assert cpu_last.to_device(torch.zeros(2, 3, 4, 4)).is_contiguous(memory_format=torch.channels_last)
    assert not Runtime(precision="bf16", memory_format="contiguous").channels_last
    with pytest.raises(InputError):
        Runtime(memory_format="nhwc")
