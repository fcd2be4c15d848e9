"""Every numeric option of every command refuses a value past its limit with one line and exit 1.

Table-driven over the real command tree (typer.main.get_command): a new int/float option without a
range in cli/option_ranges.py fails here. Options whose numbers arrive as text (eps lists, step
sizes, split counts, step lists) are listed in TEXT_NUMERIC.
"""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from defendr_cli.cli.app import app
from defendr_cli.cli.option_ranges import numeric_kind, numeric_options, range_of

runner = CliRunner()

# The arguments a command needs before its options are parsed (required arguments/options).
BASE_ARGS = {
    ("attack",): ["attack", "fgsm", "--eps", "0.01"],
    ("ensemble",): ["ensemble", "e", "--members", "a,b"],
    ("gradcam",): ["gradcam", "--model", "m", "--attack", "a"],
    ("import",): ["import", "m"],
    ("evaluate",): ["evaluate", "--model", "m"],
}

TEXT_NUMERIC = [
    (["attack", "fgsm", "--eps"], "-1", "--eps"),
    (["attack", "fgsm", "--eps"], "nan", "--eps"),
    (["attack", "fgsm", "--eps"], "inf", "--eps"),
    (["attack", "pgd", "--eps", "0.01", "--step-size"], "nan", "--step-size"),
    (["attack", "pgd", "--eps", "0.01", "--step-size"], "-0.1", "--step-size"),
    (["evaluate", "--model", "m", "--eps"], "nan", "--eps"),
    (["evaluate", "--model", "m", "--steps"], "0", "--steps"),
    (["evaluate", "--model", "m", "--restarts"], "-1", "--restarts"),
    (["prepare", "--split"], "0,0,0", "--split"),
    (["prepare", "--split"], "nan,1,1", "--split"),
    (["train", "adv", "--online", "pgd", "--eps"], "nan", "--eps"),
    (["train", "alp", "--online", "pgd", "--eps"], "-1", "--eps"),
    (["train", "dunet", "--online", "pgd", "--eps"], "inf", "--eps"),
]


def _cases() -> list[tuple[tuple[str, ...], str, str]]:
    cases = []
    for path, param in numeric_options(typer.main.get_command(app)):
        flag = param.opts[0]
        allowed = range_of(path, flag)  # KeyError: a numeric option without a declared range
        values = [allowed.past_limit()]
        if numeric_kind(param) is float:
            values += [float("nan"), float("inf")]
        for value in values:
            text = str(int(value)) if numeric_kind(param) is int else str(value)
            cases.append((path, flag, text))
    return cases


CASES = _cases()


def test_every_command_with_numeric_options_is_covered():
    commands = {path[0] for path, _, _ in CASES}
    assert {"prepare", "attack", "evaluate", "gradcam", "import", "train"} <= commands
    assert {path for path, _, _ in CASES if path[0] == "train"} >= {("train", m) for m in ("baseline", "adv", "dunet")}


def _assert_one_line(result, flag: str) -> None:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("error (invalid input): ") and flag in lines[0], result.output


@pytest.mark.parametrize(("path", "flag", "value"), CASES, ids=[f"{' '.join(p)} {f}={v}" for p, f, v in CASES])
def test_numeric_option_past_its_limit_is_one_line(tmp_path, path, flag, value):
    args = BASE_ARGS.get(path, list(path))
    result = runner.invoke(app, ["--workdir", str(tmp_path), *args, flag, value])
    _assert_one_line(result, flag)
    assert "must be" in result.output


def _high_cases() -> list[tuple[tuple[str, ...], str, str]]:
    return [(path, param.opts[0], str(int(range_of(path, param.opts[0]).past_high())))
            for path, param in numeric_options(typer.main.get_command(app))
            if range_of(path, param.opts[0]).past_high() is not None and numeric_kind(param) is int]


HIGH_CASES = _high_cases()


def test_counts_that_could_run_for_days_have_an_upper_bound():
    bounded = {flag for _, flag, _ in HIGH_CASES}
    assert {"--steps", "--epochs", "--eot", "--restarts", "--draws", "--square-queries", "--batch-size"} <= bounded


@pytest.mark.parametrize(("path", "flag", "value"), HIGH_CASES, ids=[f"{' '.join(p)} {f}={v}" for p, f, v in HIGH_CASES])
def test_numeric_option_above_its_limit_is_one_line(tmp_path, path, flag, value):
    args = BASE_ARGS.get(path, list(path))
    result = runner.invoke(app, ["--workdir", str(tmp_path), *args, flag, value])
    _assert_one_line(result, flag)


def test_a_billion_steps_and_an_empty_split_list_are_refused(tmp_path):
    for args, flag in ((["attack", "pgd", "--eps", "0.01", "--steps", "1000000000"], "--steps"),
                       (["evaluate", "--model", "m", "--steps", "5,1000000000"], "--steps"),
                       (["attack", "fgsm", "--eps", "0.01", "--split", ","], "--split"),
                       (["attack", "fgsm", "--eps", "0.01", "--split", " , "], "--split")):
        _assert_one_line(runner.invoke(app, ["--workdir", str(tmp_path), *args]), flag)


@pytest.mark.parametrize(("args", "value", "flag"), TEXT_NUMERIC, ids=[f"{' '.join(a)} {v}" for a, v, _ in TEXT_NUMERIC])
def test_numeric_text_option_past_its_limit_is_one_line(tmp_path, args, value, flag):
    result = runner.invoke(app, ["--workdir", str(tmp_path), *args, value])
    _assert_one_line(result, flag)


@pytest.mark.parametrize("args", [["attack", "fgsm", "--eps", "0.3"], ["evaluate", "--model", "m", "--eps", "0.3"],
                                  ["train", "adv", "--online", "pgd", "--eps", "0.3"]])
def test_large_pixel_eps_warns_on_one_line(tmp_path, args):
    result = runner.invoke(app, ["--workdir", str(tmp_path), *args])
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "77/255" in warnings[0] and "--eps-space normalized" in warnings[0]
    if args[0] == "evaluate":  # evaluate has no --eps-space: it must not tell the user to add one
        assert "add --eps-space" not in warnings[0] and "pixel units only" in warnings[0], warnings[0]
    else:
        assert "add --eps-space normalized" in warnings[0], warnings[0]


def test_normalized_eps_does_not_warn(tmp_path):
    result = runner.invoke(app, ["--workdir", str(tmp_path), "attack", "fgsm", "--eps", "0.3", "--eps-space", "normalized"])
    assert "warning:" not in result.output


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_is_one_line(tmp_path):
    result = runner.invoke(app, ["--workdir", str(tmp_path), "attack", "fgsm", "--eps", "0.01", "--device", "cuda"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error (invalid input): ")
    assert "cuda" in lines[0].lower()


@pytest.mark.parametrize(("attack", "pair", "option"), [("pgd", "eot=0", "eot"), ("square", "n_queries=-1", "n_queries"),
                                                        ("apgd", "rho=nan", "rho")])
def test_attack_option_past_its_range_is_one_line(tmp_path, attack, pair, option):
    result = runner.invoke(app, ["--workdir", str(tmp_path), "attack", attack, "--eps", "0.01", "--option", pair])
    _assert_one_line(result, f"option {option} of {attack} must be")
