"""sibling_results: the other report folders with an adaptive result, nothing else."""

from __future__ import annotations

import json

from defendr_cli.core.evaluation.report.suite_compare import sibling_results


def test_siblings_are_other_reports_with_an_adaptive_result_and_bad_files_are_skipped(tmp_path):
    for name, content in {"own": {"adaptive": {}}, "std": {"adaptive": {"subset": [1]}},
                          "transfer-only": {"adaptive": None}, "list": [1, 2]}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(content))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text("{not json")
    assert sibling_results(tmp_path, "own") == [("std", {"adaptive": {"subset": [1]}})]
