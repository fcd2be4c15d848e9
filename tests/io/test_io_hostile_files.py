"""Every artefact reader against files that lie (the hostile pass of docs/reliability.md, made
small): clean caches with attributes or datasets of the wrong type or size, FIFOs and devices where
files should be, damaged prediction-cache entries, checkpoint payloads and ensemble manifests of
the wrong shape, report JSON that is not an object. Each is one CorruptArtefactError (or a
recomputation, for the never-trusted prediction cache), never a traceback or a hang."""

from __future__ import annotations

import json
import os
import shutil
import signal

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from defendr_cli.cli.app import app
from defendr_cli.core.errors import CorruptArtefactError, InputError
from defendr_cli.core.evaluation.predictions import PredictionCache, Predictions
from defendr_cli.core.evaluation.report.folder import read_results
from defendr_cli.core.io.checkpoint import read_checkpoint
from defendr_cli.core.io.files import read_json_file, require_regular_file
from defendr_cli.core.io.prediction_file import read_prediction_file
from defendr_cli.core.io.reader import SplitReader, read_cache_info
from defendr_cli.core.pipeline.state import LEDGER_NAME, PipelineLedger
from defendr_cli.core.workspace import Workspace
from tests.attacks.attack_helpers import make_cache, make_checkpoint

runner = CliRunner()


@pytest.fixture
def no_hang():
    """Fail (instead of hanging the suite) when a reader blocks for more than 20 s."""
    def fail(*_):
        raise AssertionError("the command blocked")
    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def cache(workspace):
    return make_cache(workspace)


def attrs(path, **values):
    with h5py.File(path, "r+") as handle:
        for key, value in values.items():
            handle.attrs[key] = value


def dataset(path, key, **spec):
    with h5py.File(path, "r+") as handle:
        del handle[key]
        if spec:
            handle.create_dataset(key, **spec)


def one_line(result, *words):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.output.strip().count("\n") == 0, result.output
    for word in words:
        assert word in result.output, result.output


@pytest.mark.parametrize("values, words", [
    ({"format_version": "one"}, "'format_version' is 'one'"),
    ({"complete": "no"}, "'complete' is 'no'"),
    ({"split_counts": "[1, 2, 3]"}, "'split_counts'"),
    ({"split_counts": '{"test": -4}'}, "'split_counts'"),
    ({"image_size": "16"}, "'image_size'"),
    ({"image_size": np.nan}, "'image_size'"),
    ({"class_ids": 3}, "'class_ids'"),
    ({"seed": 0.5}, "'seed'"),
])
def test_cache_attributes_of_the_wrong_type_are_one_corrupt_line(cache, values, words):
    attrs(cache, **values)
    with pytest.raises(CorruptArtefactError) as info:
        read_cache_info(cache)
    assert str(cache) in str(info.value) and words in str(info.value)


@pytest.mark.parametrize("key, spec, words", [
    ("test/source_ids", {}, "lacks the dataset 'test/source_ids'"),
    ("test/labels", None, "is a group"),
    ("test/labels", {"data": np.zeros(30, np.float64)}, "'test/labels'"),
    ("test/labels", {"data": np.zeros((30, 1), np.int64)}, "'test/labels'"),
    ("test/images", {"data": np.zeros((30, 3, 16, 16), np.uint8), "compression": "gzip"}, "compressed"),
])
def test_cache_datasets_of_the_wrong_kind_are_one_corrupt_line(cache, key, spec, words):
    if spec is None:
        with h5py.File(cache, "r+") as handle:
            del handle[key]
            handle.create_group(key)
    else:
        dataset(cache, key, **spec)
    with pytest.raises(CorruptArtefactError, match=words):
        SplitReader(cache, "test")


def test_a_huge_declared_cache_is_refused_before_anything_is_allocated(cache):
    count = 10**9
    dataset(cache, "test/images", shape=(count, 3, 16, 16), dtype=np.uint8, chunks=(1, 3, 16, 16))
    dataset(cache, "test/labels", shape=(count,), dtype=np.int64, chunks=(4096,))
    dataset(cache, "test/source_ids", shape=(count,), dtype=h5py.string_dtype(), chunks=(4096,))
    with h5py.File(cache, "r+") as handle:
        counts = json.loads(handle.attrs["split_counts"])
        handle.attrs["split_counts"] = json.dumps({**counts, "test": count})
    with pytest.raises(CorruptArtefactError, match="declares 768000000000 bytes but 0 are stored"):
        read_cache_info(cache)


@pytest.mark.parametrize("make", ["fifo", "devzero", "folder"])
def test_a_fifo_device_or_folder_is_never_opened(workspace, cache, make, no_hang):
    path = workspace.path_for("data", "x")
    if make == "fifo":
        os.mkfifo(path)
    elif make == "devzero":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    with pytest.raises(CorruptArtefactError, match="not a clean cache file"):
        read_cache_info(path)
    root = str(workspace.root)
    one_line(runner.invoke(app, ["--workdir", root, "info", str(path)]), "not a clean cache file")
    make_checkpoint(workspace)
    one_line(runner.invoke(app, ["--workdir", root, "evaluate", "--model", "baseline", "--data", str(path),
                                 "--device", "cpu"]), "not a clean cache file")
    listed = runner.invoke(app, ["--workdir", root, "ls"])
    assert listed.exit_code == 0 and "tiny" in listed.output


def test_a_fifo_checkpoint_is_refused(workspace, no_hang):
    path = workspace.path_for("model", "m")
    os.mkfifo(path)
    with pytest.raises(CorruptArtefactError, match="FIFO"):
        read_checkpoint(path)
    one_line(runner.invoke(app, ["--workdir", str(workspace.root), "info", "--model", "m"]), "FIFO")


def test_ls_of_a_file_is_an_error(tmp_path):
    target = tmp_path / "not-a-folder"
    target.write_text("x")
    one_line(runner.invoke(app, ["--workdir", str(target), "ls"]), "is a file, not a folder")
    one_line(runner.invoke(app, ["--workdir", str(target), "info"]), "is a file, not a folder")


def _entry(tmp_path):
    cache = PredictionCache(tmp_path / "_predictions")
    cache.folder.mkdir()
    rows = np.arange(6)
    cache.store("m", "s", Predictions(rows % 3, rows % 2, rows))
    return cache, cache.path("m", "s")


def _flip(path, at):
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [
    lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    lambda p: p.write_bytes(b""),
    lambda p: _flip(p, 0.3),
    lambda p: _flip(p, 0.6),
    lambda p: np.savez(open(p, "wb"), preds=np.array([object()]), labels=np.zeros(1), indices=np.zeros(1)),
    lambda p: np.savez(open(p, "wb"), preds=np.zeros(6), labels=np.zeros(6), indices=np.arange(6)),
    lambda p: np.savez(open(p, "wb"), preds=np.zeros(6, int), labels=np.zeros(6, int), indices=np.zeros(6, int)),
    lambda p: np.savez(open(p, "wb"), preds=np.zeros((6, 1), int), labels=np.zeros(6, int), indices=np.arange(6)),
    lambda p: np.savez(open(p, "wb"), preds=np.zeros(5, int), labels=np.zeros(6, int), indices=np.arange(6)),
    lambda p: np.savez(open(p, "wb"), preds=np.zeros(6, int), labels=np.zeros(6, int)),
    lambda p: p.write_text(json.dumps([1, 2])),
    lambda p: (p.unlink(), os.mkfifo(p)),
], ids=["truncated", "empty", "flip-early", "flip-late", "object-array", "float", "unsorted-rows", "2-D",
        "lengths-differ", "missing-key", "not-a-zip", "fifo"])
def test_a_damaged_prediction_entry_is_recomputed_never_trusted(tmp_path, damage, no_hang):
    cache, path = _entry(tmp_path)
    assert read_prediction_file(path) is not None
    damage(path)
    assert read_prediction_file(path) is None
    recomputed = cache.get_or_compute("m", "s", lambda: Predictions(np.zeros(2, int), np.zeros(2, int), np.arange(2)))
    assert cache.misses == 1 and len(recomputed) == 2
    assert len(cache.load("m", "s")) == 2  # the fresh entry replaced the damaged one


def test_a_folder_at_an_entry_path_costs_only_the_caching(tmp_path):
    cache, path = _entry(tmp_path)
    path.unlink()
    path.mkdir()
    got = cache.get_or_compute("m", "s", lambda: Predictions(np.zeros(2, int), np.zeros(2, int), np.arange(2)))
    assert len(got) == 2 and path.is_dir()


def test_evaluate_recomputes_every_damaged_prediction_entry(workspace, cache):
    make_checkpoint(workspace)
    args = ["--workdir", str(workspace.root), "evaluate", "--model", "baseline", "--device", "cpu", "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    for entry in (workspace.reports_dir / "_predictions").glob("*.npz"):
        entry.write_bytes(entry.read_bytes()[:40])
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    clean = lambda out: json.loads(out[out.index("{"):])["transfer"]["models"][0]["clean"]
    assert clean(again.output) == clean(first.output)


def _save(path, **changes):
    payload = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            payload[outer][inner] = value
        else:
            payload[key] = value
    torch.save(payload, path)


@pytest.mark.parametrize("changes, words", [
    ({"data": [1]}, "data (list, not dict)"),
    ({"data.image_size": "16"}, "'image_size'"),
    ({"data.class_ids": "c0"}, "'class_ids'"),
    ({"config": []}, "config (list, not dict)"),
    ({"name": 5}, "name (int, not str)"),
    ({"version": True}, "version True"),
    ({"summary": {"a": 1}}, "summary (dict, not str)"),
    ({"history": {"a": 1}}, "history (dict, not list)"),
    ({"provenance": {"parents": [1]}}, "provenance.parents"),
    ({"state_dict": {"w": "text"}}, "'state_dict' entry 'w' is a str"),
])
def test_checkpoint_payloads_of_the_wrong_shape_are_one_corrupt_line(workspace, cache, changes, words):
    path = make_checkpoint(workspace, train_steps=1)
    _save(path, **changes)
    with pytest.raises(CorruptArtefactError) as info:
        read_checkpoint(path)
    assert str(path) in str(info.value) and words in str(info.value)
    one_line(runner.invoke(app, ["--workdir", str(workspace.root), "evaluate", "--model", "baseline",
                                 "--device", "cpu"]), words)


@pytest.mark.parametrize("config, words", [
    ({"weights": [float("nan"), 1.0]}, "'weights'"),
    ({"weights": [1.0]}, "'weights'"),
    ({"weights": [0.0, 0.0]}, "'weights'"),
    ({"members": "baseline"}, "'members'"),
    ({"members": []}, "'members'"),
])
def test_ensemble_manifests_that_lie_are_one_corrupt_line(workspace, cache, config, words):
    make_checkpoint(workspace, train_steps=1)
    make_checkpoint(workspace, "other", train_steps=1)
    made = runner.invoke(app, ["--workdir", str(workspace.root), "ensemble", "ens", "--members", "baseline,other"])
    assert made.exit_code == 0, made.output
    path = workspace.path_for("model", "ens")
    payload = torch.load(path, weights_only=True)
    payload["config"].update(config)
    torch.save(payload, path)
    with pytest.raises(CorruptArtefactError, match=words):
        read_checkpoint(path)


@pytest.mark.parametrize("text, words", [
    ("[1, 2]", "JSON list where a JSON object"),
    ('{"transfer": "x"}', "'transfer' is a str"),
    ('{"transfer": {"x": NaN}}', ""),
    ("{", "not a valid"),
    ("\xff", "not a valid"),
])
def test_report_results_that_lie_are_one_corrupt_line(tmp_path, text, words):
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "results.json").write_bytes(text.encode("latin-1"))
    if "NaN" in text:  # a report may record an undefined figure as NaN; not a lie
        assert read_results(folder)["transfer"]["x"] != read_results(folder)["transfer"]["x"]
        return
    with pytest.raises(CorruptArtefactError, match=words):
        read_results(folder)


def test_ls_lists_a_report_whose_results_lie_as_unreadable(workspace, cache):
    folder = workspace.reports_dir / "r"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text("[1]")
    listed = runner.invoke(app, ["--workdir", str(workspace.root), "ls"])
    assert listed.exit_code == 0 and "unreadable" in listed.output and "tiny" in listed.output


def test_json_files_are_read_bounded_and_never_through_a_fifo(tmp_path, no_hang):
    big = tmp_path / "big.json"
    big.write_text("[" + "0," * 1000 + "0]")
    with pytest.raises(CorruptArtefactError, match="bytes"):
        read_json_file(big, what="test file", expect=list, max_bytes=100)
    fifo = tmp_path / "f.json"
    os.mkfifo(fifo)
    with pytest.raises(CorruptArtefactError, match="FIFO"):
        read_json_file(fifo, what="test file")
    with pytest.raises(CorruptArtefactError, match="FIFO"):
        require_regular_file(fifo, what="test file")


@pytest.mark.parametrize("text", ["[1]", '{"stages": [1]}', '{"stages": {"a": 1}}', "{"])
def test_a_ledger_that_lies_only_costs_a_rerun(tmp_path, text):
    (tmp_path / LEDGER_NAME).write_text(text)
    path = PipelineLedger.open(tmp_path).path
    assert PipelineLedger.open(tmp_path).stages == {} and path.name == LEDGER_NAME


def test_a_fifo_ledger_never_blocks(tmp_path, no_hang):
    os.mkfifo(tmp_path / LEDGER_NAME)
    assert PipelineLedger.open(tmp_path).stages == {}


def test_info_verify_lists_an_unreadable_adversarial_set(workspace, cache):
    shutil.copyfile(cache, workspace.path_for("adv", "fake"))  # an HDF5 file that is no adversarial set
    result = runner.invoke(app, ["--workdir", str(workspace.root), "info", "--verify"])
    assert result.exit_code == 1 and "fake" in result.output.strip().splitlines()[-1]


def test_workspace_of_a_file_is_refused_by_default_data(tmp_path):
    target = tmp_path / "f"
    target.write_text("")
    with pytest.raises(InputError, match="is a file"):
        Workspace(target).default_data()


def test_a_per_image_record_whose_complete_flag_is_a_string_is_refused(tmp_path):
    from defendr_cli.core.io.per_image_record import (COLUMN_NAMES, PerImageRecordWriter, RecordHeader,
                                                      load_per_image_record)

    header = RecordHeader(suite="s", budgets={}, eps=0.1, seed=0, model_fingerprint="f")
    final = tmp_path / "r.h5"
    with PerImageRecordWriter(final, header) as writer:
        rows = {name: [0] for name in COLUMN_NAMES}
        rows.update(source_id=["a"], attack=["pgd"], broken_by=[""])
        writer.append(rows)
        writer.finalize()
    assert len(load_per_image_record(final)) == 1
    attrs(final, complete="no")
    with pytest.raises(CorruptArtefactError, match="'complete' is 'no'"):
        load_per_image_record(final)
    attrs(final, complete=True, eps=np.nan)
    with pytest.raises(CorruptArtefactError, match="'eps'"):
        load_per_image_record(final)


def test_checkpoint_config_counts_must_be_integers():
    """A checkpoint whose config.num_classes is the string '4' is one corrupt line, not a model built from int('4')."""
    import pytest as _pytest

    from defendr_cli.core.errors import CorruptArtefactError as _Corrupt
    from defendr_cli.core.io.checkpoint_schema import checkpoint_fields

    payload = {"kind": "classifier", "name": "m", "config": {"arch": "tinycnn", "num_classes": "4", "image_size": 32},
               "state_dict": {}}
    with _pytest.raises(_Corrupt, match="num_classes"):
        checkpoint_fields(payload, "models/m.pt")
    payload["config"]["num_classes"] = 4
    checkpoint_fields(payload, "models/m.pt")
    payload["config"]["image_size"] = True
    with _pytest.raises(_Corrupt, match="image_size"):
        checkpoint_fields(payload, "models/m.pt")
