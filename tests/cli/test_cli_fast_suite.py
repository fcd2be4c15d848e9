"""`evaluate --help` says what `--suite fast` is (issue 21)."""

from __future__ import annotations

from typer.testing import CliRunner

from defendr_cli.cli.app import app


def test_evaluate_help_says_what_fast_is():
    result = CliRunner().invoke(app, ["evaluate", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.output.replace("│", " ").split())
    assert "fast is a screening evaluation" in text and "for a claim in a paper, run standard" in text
