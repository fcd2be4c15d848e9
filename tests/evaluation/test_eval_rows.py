"""AdaptiveRow's typed eps points (core.evaluation.adaptive.results): results.json round-trips unchanged."""

from __future__ import annotations

import json

import pytest

from defendr_cli.core.evaluation.adaptive.results import AdaptiveRow, EnsembleRoute, EpsPoint, GridPoint

PASSES = {"apgd-ce": {"forward": 1200, "backward": 1100, "images": 11}, "square": {"forward": 90, "backward": 0,
                                                                                    "images": 3},
          "total": {"forward": 1290, "backward": 1100}}


def _full_row() -> dict:
    """A row as results.json stores it with every optional key filled (two eps, one per channel; the
    second eps adds an attack column, as a custom suite may)."""
    return {
        "name": "baseline+advfgsm", "kind": "ensemble", "stochastic": True, "eot": 2, "clean": 0.875,
        "grid": [{"eps_label": "8/255", "eps": 8 / 255, "steps": 2, "restarts": 1, "accuracy": 0.75},
                 {"eps_label": "c3", "eps": [0.01, 0.02, 0.03], "steps": 2, "restarts": 1, "accuracy": 0.5}],
        "robust": {"8/255": 0.625, "c3": 0.25},
        "transfer": {"fgsm-eps8_255-baseline-test": 0.8125},
        "eps0_accuracy": 0.875, "large_eps_accuracy": 0.0,
        "checks": [{"name": "randomized", "status": "pass", "detail": "rand suite", "passed": True},
                   {"name": "monotone-in-eps", "status": "warn", "detail": "rises", "passed": False}],
        "attacks": {"pgd": {"8/255": 0.75, "c3": 0.5}, "apgd-ce": {"8/255": 0.6875, "c3": 0.375},
                    "square": {"c3": 0.3125}},
        "suite": "custom",
        "eps_values": {"8/255": 8 / 255, "c3": [0.01, 0.02, 0.03]},
        "all_draws": {"8/255": 0.5, "c3": 0.125},
        "draws": {"8/255": [0.625, 0.6875, 0.5625], "c3": [0.25, 0.3125, 0.1875]},
        "route": {"8/255": {"winner": "tie", "wins": {"combined": 1, "member-loss": 1, "both": 2, "neither": 9},
                            "combined": 0.6875, "member_loss": 0.75},
                  "c3": {"winner": "member-loss", "wins": {"combined": 0, "member-loss": 3, "both": 5, "neither": 4},
                         "combined": 0.5, "member_loss": 0.3125}},
        "budgets": {"apgd-ce": {"attack": "apgd", "loss": "ce", "steps": 20, "eot": 2},
                    "square": {"attack": "square", "n_queries": 10}},
        "passes": {"8/255": PASSES, "c3": PASSES},
        "records": {"8/255": "per_image-baseline+advfgsm-8_255.h5", "c3": "per_image-baseline+advfgsm-c3.h5"},
    }


def test_a_row_with_every_optional_field_round_trips_through_results_json_unchanged():
    data = _full_row()
    row = AdaptiveRow.from_dict(json.loads(json.dumps(data)))
    assert json.dumps(row.to_dict()) == json.dumps(data)  # same keys, order and values
    again = AdaptiveRow.from_dict(json.loads(json.dumps(row.to_dict(), allow_nan=True)))
    assert again == row


def test_the_points_are_typed_per_eps():
    row = AdaptiveRow.from_dict(_full_row())
    assert [p.label for p in row.points] == ["8/255", "c3"]
    first, second = row.points
    assert first == EpsPoint("8/255", 0.625, 8 / 255, {"pgd": 0.75, "apgd-ce": 0.6875}, 0.5, [0.625, 0.6875, 0.5625],
                             EnsembleRoute("tie", {"combined": 1, "member-loss": 1, "both": 2, "neither": 9},
                                           0.6875, 0.75), PASSES, "per_image-baseline+advfgsm-8_255.h5")
    assert second.eps == [0.01, 0.02, 0.03] and second.route.winner == "member-loss"
    assert second.attacks["square"] == 0.3125
    assert row.point("c3") is second and row.point("4/255") is None
    assert row.robust_at("8/255") == 0.625 and row.robust_at("4/255") is None and row.robust_at(None) is None
    assert row.attack_labels() == ["pgd", "apgd-ce", "square"]


def test_an_old_pgd_sweep_row_without_suite_keys_round_trips_and_takes_its_eps_from_the_grid():
    data = {key: value for key, value in _full_row().items() if key in (
        "name", "kind", "stochastic", "eot", "clean", "grid", "robust", "transfer", "eps0_accuracy",
        "large_eps_accuracy", "checks")}
    data["attacks"] = {"pgd": dict(data["robust"])}
    row = AdaptiveRow.from_dict(data)
    assert json.dumps(row.to_dict()) == json.dumps(data)
    assert all(p.eps is None and p.route is None and p.draws is None and p.passes is None for p in row.points)
    assert row.eps_of("c3") == [0.01, 0.02, 0.03] and row.eps_of("8/255") == 8 / 255 and row.eps_of("x") is None


def test_a_label_without_a_robust_accuracy_is_a_damaged_row():
    data = _full_row()
    data["records"]["16/255"] = "per_image-x.h5"
    with pytest.raises(ValueError, match="16/255"):
        AdaptiveRow.from_dict(data)


def test_set_point_replaces_the_point_of_the_same_label_in_place():
    row = AdaptiveRow("m", "classifier", False, 1, 0.9, [GridPoint("8/255", 8 / 255, 2, 1, 0.5)], [], {}, 0.9, 0.0)
    row.set_point(EpsPoint("8/255", 0.5, 8 / 255))
    row.set_point(EpsPoint("16/255", 0.25, 16 / 255))
    row.set_point(EpsPoint("8/255", 0.4, 8 / 255, {"apgd-ce": 0.4}))
    assert [(p.label, p.robust) for p in row.points] == [("8/255", 0.4), ("16/255", 0.25)]
    assert row.to_dict()["robust"] == {"8/255": 0.4, "16/255": 0.25}
    assert row.to_dict()["attacks"] == {"apgd-ce": {"8/255": 0.4}}
