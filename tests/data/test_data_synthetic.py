"""The synthetic dataset: deterministic, distinct classes, any size, fast."""

from __future__ import annotations

import numpy as np
import pytest

from defendr_cli.core.data.prepare import prepare_synthetic
from defendr_cli.core.io.reader import SplitReader, read_cache_info
from defendr_cli.core.data.synthetic import MAX_CLASSES, generate_class_images, synthetic_classes
from defendr_cli.core.errors import ArtefactExistsError, InputError


def test_deterministic_per_seed_and_independent_of_batching():
    a = generate_class_images(3, 10, 24, seed=1)
    assert a.dtype == np.uint8 and a.shape == (10, 3, 24, 24)
    np.testing.assert_array_equal(a, generate_class_images(3, 10, 24, seed=1))
    np.testing.assert_array_equal(a[4:7], generate_class_images(3, 3, 24, seed=1, start=4))
    assert not np.array_equal(a, generate_class_images(3, 10, 24, seed=2))
    assert len({img.tobytes() for img in a}) == 10  # nuisance variation between images


def test_many_classes_are_all_different():
    classes = synthetic_classes(MAX_CLASSES)
    factors = {(c.shape, c.angle, c.frequency, c.palette, c.hatch) for c in classes}
    assert len(factors) == MAX_CLASSES and len({c.class_id for c in classes}) == MAX_CLASSES
    first = classes[:10]
    for i, a in enumerate(first):  # the first classes differ in at least two structural factors
        for b in first[i + 1:]:
            same = sum(x == y for x, y in zip((a.shape, a.angle, a.frequency, a.palette),
                                              (b.shape, b.angle, b.frequency, b.palette)))
            assert same <= 2
    with pytest.raises(InputError):
        synthetic_classes(MAX_CLASSES + 1)


def test_prepare_synthetic_writes_a_cache_with_paper_split_and_201_classes(workspace):
    result = prepare_synthetic(workspace, classes=201, per_class=10, image_size=8, seed=4)
    info = read_cache_info(result.path)
    assert result.path == workspace.path_for("data", "synthetic-c201-n10-8px-seed4")
    assert info.split_counts == {"train": 201 * 8, "val": 201, "test": 201} and info.num_classes == 201
    assert info.class_ids[200] == "syn0200" and info.seed == 4 and info.source_kind == "synthetic"
    with SplitReader(result.path, "val") as reader:
        assert reader.labels.tolist() == list(range(201))
        np.testing.assert_array_equal(reader.read_uint8([7]), generate_class_images(7, 1, 8, 4, start=8))
    with pytest.raises(ArtefactExistsError):
        prepare_synthetic(workspace, classes=201, per_class=10, image_size=8, seed=4)


def test_prepare_synthetic_paper_split_counts(workspace):
    result = prepare_synthetic(workspace, classes=3, per_class=70, split="54,6,10", image_size=8)
    assert result.info.split_counts == {"train": 162, "val": 18, "test": 30}
    with pytest.raises(InputError, match="adds up"):
        prepare_synthetic(workspace, classes=3, per_class=60, split="54,6,10", image_size=8, force=True)
