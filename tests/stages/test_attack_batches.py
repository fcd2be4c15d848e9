"""One batch of the attack stage: the CUDA out-of-memory fallback and the seeded batch streams."""

from __future__ import annotations

import torch

from defendr_cli.core.progress import NullReporter
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.attacks.base import AttackResult
from defendr_cli.core.stages.attack_batches import AttackedBatch, attack_batch, batch_generator


class _OomAttacker:
    """Raises CUDA OOM for chunks larger than 4 rows; otherwise returns the rows + 1."""

    runtime = Runtime(device=torch.device("cuda"))  # never touched: only its device type is read

    def __init__(self):
        self.sizes = []

    def attack(self, images, labels, generator, active):
        self.sizes.append(images.shape[0])
        if images.shape[0] > 4:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return AttackedBatch(labels.clone(), [AttackResult(images + 1, labels > 0, labels, None), None])


def test_cuda_oom_halves_the_chunk_and_keeps_going():
    attacker, reporter, chunk = _OomAttacker(), NullReporter(), [16]
    images, labels = torch.rand(10, 3, 2, 2), torch.arange(10)
    batch = attack_batch(attacker, images, labels, seed=0, split="test", batch_index=0, active=[True, False],
                         chunk=chunk, reporter=reporter)
    assert chunk == [2] and attacker.sizes == [10, 5, 2, 2, 2, 2, 2]
    assert torch.equal(batch.results[0].adv, images + 1) and torch.equal(batch.clean_pred, labels)
    assert torch.equal(batch.results[0].success, labels > 0) and batch.results[0].targets is None
    assert batch.results[1] is None  # an inactive eps stays None
    assert "retrying with 5" in reporter.notes[0] and "retrying with 2" in reporter.notes[1]


def test_batch_generator_depends_on_seed_split_and_batch():
    draw = lambda *key: torch.rand(3, generator=batch_generator(*key))  # noqa: E731
    assert torch.equal(draw(0, "test", 1), draw(0, "test", 1))
    assert not torch.equal(draw(0, "test", 1), draw(0, "test", 2))
    assert not torch.equal(draw(0, "test", 1), draw(0, "train", 1))
    assert not torch.equal(draw(0, "test", 1), draw(1, "test", 1))
