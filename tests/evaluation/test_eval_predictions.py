"""predict(): argmax per batch written into preallocated columns, sorted by clean-split row."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from defendr_cli.core.evaluation.predictions import predict
from defendr_cli.core.runtime import Runtime


@dataclass
class _Batch:
    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor


class _Linear(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(3 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def _batches(n: int, batch: int, seed: int = 0) -> list[_Batch]:
    g = torch.Generator().manual_seed(seed)
    rows = torch.randperm(n, generator=g)  # shuffled rows: predict must sort them back
    images = torch.rand(n, 3, 4, 4, generator=g)
    labels = torch.randint(0, 5, (n,), generator=g)
    return [_Batch(images[k:k + batch], labels[k:k + batch], rows[k:k + batch]) for k in range(0, n, batch)]


@pytest.mark.parametrize("total", [None, 0, 7, 23, 100])  # unknown, too small, exact, too large
def test_predict_gives_the_same_sorted_columns_whatever_total_it_is_told(total):
    model, batches = _Linear(), _batches(23, 4)
    out = predict(model, batches, Runtime(), total=total)
    rows = torch.cat([b.indices for b in batches]).numpy()
    order = np.argsort(rows)
    with torch.no_grad():
        expected = torch.cat([model(b.images).argmax(1) for b in batches]).numpy()[order]
    assert out.indices.tolist() == list(range(23))
    assert out.preds.tolist() == expected.tolist()
    assert out.labels.tolist() == torch.cat([b.labels for b in batches]).numpy()[order].tolist()
    assert out.preds.dtype == out.labels.dtype == out.indices.dtype == np.int64
    assert len(out) == 23 and out.preds.base is None  # owned arrays, not views of the work buffer


def test_predict_on_no_batches_is_empty():
    out = predict(_Linear(), [], Runtime(), total=10)
    assert len(out) == 0 and out.indices.dtype == np.int64
