"""Counted cost: forward and backward passes per image, counted at the model while an attack runs.

Wrap the model, attack the wrapper, read the counts:

    with count_passes(model, image_ids) as counted:
        result = apgd(counted, images, labels, eps=8 / 255, generator=gen)
    counts = counted.counts()   # PassCounts: image_ids, forward, backward (int64 (N,) numpy)

Every call of the wrapper on a batch of n rows adds 1 to the forward count of each of those n
images; every backward pass through that call's output (a hook on the logits, fired by
`torch.autograd.grad` and `.backward()` alike) adds 1 to their backward count. A forward pass under
`torch.no_grad()` counts no backward; a graph never differentiated counts none either.

Attacks that call the model on a subset of their batch (APGD and FAB on the images not yet
fooled, Square on the images still active) declare the subset with `on_rows(model, index)`, so
every row of the subset is attributed to its own image (also a CountingModel wrapped inside another
module, e.g. a defense around the counted classifier, as long as that module keeps the batch's
rows). `on_rows` is a no-op for a model without a counter:
attack results are bit-identical with and without the wrapper. A batch whose size differs from
the declared rows is a MismatchError (an attack that subsets without declaring it), never a
silent misattribution. Counts stay on the model's device (no host sync) until `counts()`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from defendr_cli.core.errors import MismatchError


@dataclass
class PassCounts:
    """Per image: `image_ids` int64 (N,) as given to the wrapper, `forward` and `backward` int64
    (N,) the passes counted for that image."""

    image_ids: np.ndarray
    forward: np.ndarray
    backward: np.ndarray

    @property
    def total_forward(self) -> int:
        return int(self.forward.sum())

    @property
    def total_backward(self) -> int:
        return int(self.backward.sum())


class CountingModel(nn.Module):
    """`model` with per-image pass counters; row i of the batch attacks see is `image_ids[i]`.

    Call it like the model (same outputs, same gradients). `image_ids`: int64 (N,), one id per row
    of the batch the attack is given (e.g. row indices of the split); default 0..N-1 with `size`.
    """

    def __init__(self, model: nn.Module, image_ids: Sequence[int] | np.ndarray | torch.Tensor) -> None:
        super().__init__()
        self.model = model
        ids = image_ids.cpu().numpy() if isinstance(image_ids, torch.Tensor) else np.asarray(image_ids)
        self.image_ids = ids.astype(np.int64).reshape(-1)
        self._rows: list[torch.Tensor] = []
        self._forward: torch.Tensor | None = None
        self._backward: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return int(self.image_ids.size)

    def _counters(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if self._forward is None:
            self._forward = torch.zeros(self.size, dtype=torch.int64, device=device)
            self._backward = torch.zeros(self.size, dtype=torch.int64, device=device)
        return self._forward, self._backward

    def current_rows(self, device: torch.device) -> torch.Tensor:
        """Positions (int64, into image_ids) of the rows the next batch holds, in order."""
        if self._rows:
            return self._rows[-1]
        return torch.arange(self.size, device=device)

    @contextlib.contextmanager
    def narrowed(self, index: torch.Tensor) -> Iterator[None]:
        """Until exit, batches hold the rows `index` (int64 or bool, into the current rows)."""
        current = self.current_rows(index.device)
        self._rows.append(current[index.to(current.device)])
        try:
            yield
        finally:
            self._rows.pop()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        forward_counts, backward_counts = self._counters(images.device)
        rows = self.current_rows(images.device).to(forward_counts.device)
        if rows.numel() != images.shape[0]:
            raise MismatchError(
                f"a batch of {images.shape[0]} images reached the pass counter where {rows.numel()} were "
                "declared: an attack that calls the model on a subset must wrap the call in on_rows()")
        forward_counts.index_add_(0, rows, torch.ones_like(rows))
        output = self.model(images)
        if isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(lambda grad, rows=rows: self._count_backward(rows))
        return output

    def _count_backward(self, rows: torch.Tensor) -> None:
        self._backward.index_add_(0, rows, torch.ones_like(rows))

    def counts(self) -> PassCounts:
        """The counts so far (one host sync)."""
        if self._forward is None:
            zeros = np.zeros(self.size, dtype=np.int64)
            return PassCounts(self.image_ids.copy(), zeros, zeros.copy())
        return PassCounts(self.image_ids.copy(), self._forward.cpu().numpy().copy(),
                          self._backward.cpu().numpy().copy())


@contextlib.contextmanager
def count_passes(model: nn.Module, image_ids: Sequence[int] | np.ndarray | torch.Tensor) -> Iterator[CountingModel]:
    """Yield a CountingModel around `model` for rows `image_ids`; attack it, then read `.counts()`."""
    counted = CountingModel(model, image_ids)
    yield counted


@contextlib.contextmanager
def on_rows(model: nn.Module, index: torch.Tensor) -> Iterator[None]:
    """Declare that the calls inside see only rows `index` (int64 or bool) of the current batch.

    Narrows every CountingModel in `model` (itself, or one wrapped inside another module that keeps
    the batch's rows); a no-op when there is none. Attacks wrap every model call on a subset in it."""
    counters = [module for module in model.modules() if isinstance(module, CountingModel)]
    with contextlib.ExitStack() as stack:
        for counter in counters:
            stack.enter_context(counter.narrowed(index))
        yield
