"""Every command's --help works and names its purpose."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from defendr_cli.cli.app import app

COMMANDS = ["prepare", "attack", "train", "ensemble", "evaluate", "gradcam", "reproduce", "info", "ls"]


def test_root_help_lists_every_command():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help(command):
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and command in result.output


@pytest.mark.parametrize("option", ["--source", "--classes", "--class-list", "--per-class", "--split",
                                    "--image-size", "--resize", "--seed", "--workers", "--allow-short", "--force"])
def test_prepare_help_documents_its_options(option):
    result = CliRunner().invoke(app, ["prepare", "--help"])
    assert option in result.output
