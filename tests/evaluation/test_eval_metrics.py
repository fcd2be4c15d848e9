"""Metrics and tables against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from defendr_cli.core.errors import MismatchError
from defendr_cli.core.evaluation import metrics
from defendr_cli.core.evaluation.report.table import Table


def test_accuracy_and_per_class_by_hand():
    preds = np.array([0, 1, 1, 2, 2, 0])
    labels = np.array([0, 1, 2, 2, 2, 1])
    assert metrics.accuracy(preds, labels) == pytest.approx(4 / 6)
    per_class = metrics.per_class_accuracy(preds, labels, 4)
    assert per_class[0] == 1.0 and per_class[1] == 0.5 and per_class[2] == pytest.approx(2 / 3)
    assert math.isnan(per_class[3])  # no image of class 3


def test_confusion_matrix_by_hand():
    clean = np.array([0, 0, 1, 2])
    adv = np.array([0, 1, 1, 0])
    m = metrics.confusion_matrix(clean, adv, 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]
    assert m.sum() == 4


def test_length_mismatch_is_an_error():
    with pytest.raises(MismatchError):
        metrics.accuracy(np.zeros(3, int), np.zeros(4, int))


def test_half_mask_is_deterministic_per_seed_and_exactly_half():
    a, b, c = metrics.half_mask(101, 3), metrics.half_mask(101, 3), metrics.half_mask(101, 4)
    assert a.sum() == 50 and np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_mixed_accuracy_by_hand():
    labels = np.arange(10) % 3
    clean = labels.copy()            # all correct
    adv = (labels + 1) % 3           # all wrong
    # half of the rows take the (wrong) adversarial prediction -> exactly 50%
    assert metrics.mixed_accuracy(clean, adv, labels, seed=0) == 0.5
    assert metrics.mixed_accuracy(clean, adv, labels, seed=0) == metrics.mixed_accuracy(clean, adv, labels, seed=0)
    mask = metrics.half_mask(10, 7)
    adv_partly = np.where(np.arange(10) < 5, adv, labels)
    expected = np.mean(np.where(mask, adv_partly, clean) == labels)
    assert metrics.mixed_accuracy(clean, adv_partly, labels, seed=7) == expected


def test_best_and_worst_classes():
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    preds = np.array([0, 0, 1, 0, 0, 0, 3, 3])  # class acc: 1, .5, 0, 1
    best, worst = metrics.best_and_worst_classes(preds, labels, ["a", "b", "c", "d"], k=10)
    assert [s.name for s in best] == ["a", "d"]  # k shrinks to half of 4 classes
    assert [s.name for s in worst] == ["c", "b"]
    assert worst[1].accuracy == 0.5 and worst[1].count == 2


def test_table_renders_percentages_and_dashes():
    t = Table("t", "T", ["Model", "Acc"], percent_columns={1})
    t.add("m", 0.9070)
    t.add("n", None)
    md = t.to_markdown()
    assert "| m | 90.70 |" in md and "| n | - |" in md
    assert t.to_csv().splitlines() == ["Model,Acc", "m,0.907", "n,"]
    assert Table.from_dict(t.to_dict()).rows == t.rows
