"""`train`, `attack` and `evaluate` under torchrun with two CPU processes (gloo) match one process.

One torchrun launch runs the three commands in sequence (tests/distributed/run_cli_sequence.py)
in a workspace that is a copy of the single-process one: same clean cache, and the attack and
evaluation use the very same baseline checkpoint file, so their outputs must be identical.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from defendr_cli.cli.app import app
from defendr_cli.core.io.checkpoint import read_checkpoint
from defendr_cli.core.workspace import Workspace
from tests.distributed.dist_helpers import assert_same_h5, torchrun_sequence
from tests.training.train_helpers import write_tiny_cache

TRAIN = ["train", "baseline", "--arch", "tinycnn", "--epochs", "2", "--batch-size", "16", "--lr", "0.01"]
# 30 test rows in batches of 8 (8, 8, 8, 6): rank 0 attacks rows 0-15, rank 1 rows 16-29
ATTACK = ["attack", "pgd", "--eps", "8/255,0.02", "--steps", "3", "--batch-size", "8", "--targeted", "random"]
EVALUATE = ["evaluate", "--models", "baseline", "--adaptive", "--attacks", "pgd", "--steps", "1,2", "--restarts", "1", "--subset", "12",
            "--batch-size", "8", "--name", "report"]
# the attack suite in 3 chunks of 4 images: rank 0 runs chunks 0 and 2, rank 1 chunk 1; rank 0 merges the record
SUITE = ["evaluate", "--models", "baseline", "--adaptive", "--suite", "quick", "--square-queries", "20", "--subset", "12",
         "--batch-size", "8", "--chunk-size", "4", "--adv", "none", "--name", "suite"]


def _cli(ws: Workspace, args: list[str]) -> str:
    result = CliRunner().invoke(app, ["--workdir", str(ws.root), *args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(single-process workspace, two-process workspace, torchrun stdout)."""
    root = tmp_path_factory.mktemp("dist")
    single, parallel = Workspace(root / "single"), Workspace(root / "parallel")
    write_tiny_cache(single.path_for("data", "tiny"), per_class={"train": 16, "val": 6, "test": 10})
    shutil.copyfile(single.path_for("data", "tiny"), parallel.path_for("data", "tiny"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same kernels as the torchrun workers (OMP_NUM_THREADS=1)
    try:
        _cli(single, TRAIN)
        shutil.copyfile(single.path_for("model", "baseline"), parallel.path_for("model", "baseline"))
        _cli(single, TRAIN + ["--name", "again"])  # what the parallel run's --name changes, nothing else
        _cli(single, ATTACK)
        _cli(single, EVALUATE)
        _cli(single, SUITE)
    finally:
        torch.set_num_threads(threads)
    done = torchrun_sequence(parallel.root, [TRAIN + ["--name", "again"], ATTACK, EVALUATE, SUITE])
    return single, parallel, done.stdout


def test_train_two_processes_matches_one_process(runs):
    single_ws, parallel_ws, stdout = runs
    single, parallel = read_checkpoint(single_ws.path_for("model", "again")), read_checkpoint(parallel_ws.path_for("model", "again"))
    assert len(parallel.history) == 2
    for a, b in zip(single.history, parallel.history):
        assert a["val_acc"] == pytest.approx(b["val_acc"], abs=1e-9)  # 18 val images, counts summed over ranks
        assert a["train_acc"] == pytest.approx(b["train_acc"], abs=1e-9)
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-4)
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-4)
    for key, value in single.state_dict.items():  # gradients averaged over the two halves of each batch
        assert torch.allclose(value, parallel.state_dict[key], atol=1e-4), key
    assert single.hparams == parallel.hparams
    assert not list(parallel_ws.dir_for("model").glob(".*"))  # rank 0 removed the resume state
    assert stdout.count("wrote ") == 1 and stdout.count("data-parallel run") == 0  # tables by rank 0 only


def test_attack_two_processes_writes_the_single_process_file(runs):
    single_ws, parallel_ws, stdout = runs
    names = sorted(p.name for p in single_ws.adv_dir.glob("*.h5"))
    assert len(names) == 2 and names == sorted(p.name for p in parallel_ws.adv_dir.glob("*.h5"))
    for name in names:
        assert_same_h5(single_ws.adv_dir / name, parallel_ws.adv_dir / name)
    hidden = sorted(p.name for p in parallel_ws.adv_dir.iterdir() if p.name.startswith("."))
    assert hidden == sorted(f".{n}.seal" for n in names)  # shards (and their seals) removed; the sets' seals kept
    assert sorted(p.name for p in parallel_ws.adv_dir.glob("*.png")) == sorted(n[:-3] + ".png" for n in names)
    assert stdout.count("sets in ") == 1


def test_evaluate_two_processes_gives_the_single_process_tables(runs):
    single_ws, parallel_ws, stdout = runs
    def results(ws):
        text = (ws.reports_dir / "report" / "results.json").read_text(encoding="utf-8")
        out = json.loads(text.replace(str(ws.root), "WS"))
        assert out.pop("created")  # the only field that may differ: the time of writing
        return out
    single, parallel = results(single_ws), results(parallel_ws)
    assert single["transfer"]["models"] and single["adaptive"]["models"][0]["grid"]
    assert single == parallel
    for csv in sorted((single_ws.reports_dir / "report").glob("*.csv")):
        assert csv.read_text() == (parallel_ws.reports_dir / "report" / csv.name).read_text(), csv.name
    assert stdout.count("report: ") == 2  # one per evaluate (this one and SUITE), rank 0 alone prints


def test_adaptive_suite_two_processes_gives_the_single_process_record_and_report(runs):
    single_ws, parallel_ws, _ = runs
    single, parallel = single_ws.reports_dir / "suite", parallel_ws.reports_dir / "suite"
    def results(ws, folder):
        out = json.loads((folder / "results.json").read_text(encoding="utf-8").replace(str(ws.root), "WS"))
        assert out.pop("created")
        return out
    saved = results(single_ws, single)
    [row] = saved["adaptive"]["models"]
    assert list(row["attacks"]) == ["apgd-ce", "apgd-t", "square"] and row["passes"]["8/255"]["total"]["forward"] > 0
    assert saved == results(parallel_ws, parallel)
    [record] = row["records"].values()
    assert_same_h5(single / record, parallel / record)
    names = ["report.md", "robustbench-baseline.json", record.replace(".h5", ".csv"), "tables/adaptive-cost.csv"]
    for name in names:
        text = [(folder / name).read_text().replace(str(ws.root), "WS")
                for ws, folder in ((single_ws, single), (parallel_ws, parallel))]
        assert text[0] == text[1], name
    assert not list(parallel.glob(".*partial"))


def test_python_m_defendr_cli_under_torchrun_inits_its_own_group_and_rank0_alone_prints(tmp_path):
    ws = Workspace(tmp_path / "ws")
    write_tiny_cache(ws.path_for("data", "tiny"), per_class={"train": 5, "val": 2, "test": 2})  # 15 rows: padded
    from tests.distributed.dist_helpers import torchrun_cli

    done = torchrun_cli(ws.root, ["train", "clp", "--arch", "tinycnn", "--epochs", "1", "--batch-size", "4", "--json"])
    printed = json.loads(done.stdout)  # exactly one JSON document on stdout
    assert printed["name"] == "clp" and printed["history"][0]["val_acc"] is not None
    assert read_checkpoint(ws.path_for("model", "clp")).history == printed["history"]
