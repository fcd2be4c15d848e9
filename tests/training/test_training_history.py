"""Training history as typed `EpochRecord`s: the stored dict form (checkpoint, resume state) is
unchanged, the best-epoch rule is the loop's, and a run's result holds the records."""

from __future__ import annotations

from defendr_cli.core.io.checkpoint import read_checkpoint
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.training.history import EpochRecord
from defendr_cli.core.training.loop import make_context, train
from defendr_cli.core.training.recipes.registry import train_options


def test_stored_form_leaves_out_unmeasured_metrics_in_the_stored_order():
    full = EpochRecord(2, 0.01, 0.5, train_acc=0.75, val_loss=0.6, val_acc=0.5, seconds=1.25)
    assert list(full.to_dict()) == ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"]
    bare = EpochRecord(1, 0.01, 0.7, seconds=0.5)  # no logits, no validation split
    assert bare.to_dict() == {"epoch": 1, "lr": 0.01, "train_loss": 0.7, "seconds": 0.5}
    assert EpochRecord.from_dict(full.to_dict()) == full and EpochRecord.from_dict(bare.to_dict()) == bare
    assert EpochRecord.from_dict({**bare.to_dict(), "later_key": 1}) == bare


def test_the_best_epoch_is_the_highest_validation_accuracy_or_the_last_without_validation():
    first = EpochRecord(1, 0.1, 1.0, val_acc=0.5)
    assert first.beats(None)
    assert EpochRecord(2, 0.1, 0.9, val_acc=0.6).beats(first)
    assert not EpochRecord(2, 0.1, 0.9, val_acc=0.5).beats(first)  # a tie keeps the earlier epoch
    assert EpochRecord(2, 0.1, 0.9).beats(first)  # no validation: the last epoch


def test_a_run_returns_records_and_stores_their_dicts(workspace, tiny_cache):
    options = train_options("baseline", dict(arch="tinycnn", epochs=2, batch_size=12, lr=0.02))
    result = train(options, make_context(workspace, Runtime()))
    assert [r.epoch for r in result.history] == [1, 2] and all(isinstance(r, EpochRecord) for r in result.history)
    checkpoint = read_checkpoint(result.path)
    assert checkpoint.history == [r.to_dict() for r in result.history]
    assert checkpoint.best == result.best.to_dict() and result.best in result.history
