"""`train dunet` end to end on tiny seeded data: the guided loss falls, the denoised classifier beats
the undefended one on the adversarial training set, and the target's weights never change."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from defendr_cli.core.io.adversarial import AdvSetReader
from defendr_cli.core.errors import InputError, MismatchError, MissingArtefactError
from defendr_cli.core.fingerprint import file_fingerprint
from defendr_cli.core.models.loading import load_model
from defendr_cli.core.models.denoised import DenoisedClassifier
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.training.loop import make_context, train
from defendr_cli.core.training.recipes.dunet import DunetRecipe, guided_loss
from defendr_cli.core.training.recipes.registry import train_options
from defendr_cli.core.workspace import Workspace
from tests.evaluation.eval_builders import save_classifier, train_classifier, write_adv_set, write_cache

EPS = 40 / 255


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A baseline, FGSM sets of its train and val splits, and a logits-guided DUNET trained on them."""
    ws = Workspace(tmp_path_factory.mktemp("dunet"))
    cache = write_cache(ws, train=24)
    baseline = train_classifier(cache, steps=80)
    save_classifier(ws, "baseline", baseline, cache)
    for split in ("train", "val"):
        write_adv_set(ws, baseline, cache, eps=EPS, eps_label="40/255", split=split)
    before = {k: v.clone() for k, v in baseline.state_dict().items()}
    fingerprint = file_fingerprint(ws.path_for("model", "baseline"))
    options = train_options("dunet", dict(width_mult=0.125, epochs=3, batch_size=16, lr=5e-3,
                           adv=["fgsm-eps40_255"], seed=0))
    result = train(options, make_context(ws, Runtime()))
    return ws, result, before, fingerprint


def test_guided_loss_decreases_and_checkpoint_is_denoised(trained):
    ws, result, _, _ = trained
    losses = [r.train_loss for r in result.history]
    assert losses[-1] < 0.8 * losses[0], losses
    assert result.checkpoint.kind == "denoised"
    roles = [p.role for p in result.checkpoint.provenance.parents]
    assert roles[0] == "target" and "adversarial-set" in roles
    assert "cached" in result.checkpoint.summary  # validated on the cached val-split twin


def test_denoiser_beats_the_undefended_model_on_the_adversarial_train_set(trained):
    ws, _, _, _ = trained
    denoised = load_model(ws, "dunet").module
    baseline = load_model(ws, "baseline").module
    assert isinstance(denoised, DenoisedClassifier)
    with AdvSetReader(ws.path_for("adv", "fgsm-eps40_255-baseline-train")) as reader:
        adv = reader.read(np.arange(len(reader)))
        labels = torch.as_tensor(reader.labels)
    with torch.no_grad():
        undefended = (baseline(adv).argmax(1) == labels).float().mean().item()
        defended = (denoised(adv).argmax(1) == labels).float().mean().item()
    assert defended > undefended + 0.05, (undefended, defended)


def test_target_weights_unchanged(trained):
    ws, _, before, fingerprint = trained
    assert file_fingerprint(ws.path_for("model", "baseline")) == fingerprint
    classifier = load_model(ws, "dunet").module.classifier
    after = classifier.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("guide", ["features", "pixels"])
def test_other_guides_and_online_pairs_train(trained, guide):
    ws, _, _, _ = trained
    options = train_options("dunet", dict(name=f"dn-{guide}", guide=guide, width_mult=0.0625, epochs=1,
                           batch_size=32, online="fgsm", eps="40/255", seed=0))
    result = train(options, make_context(ws, Runtime()))
    assert result.checkpoint.config["guide"] == guide
    assert "online fgsm" in result.checkpoint.summary and "online FGSM" in result.checkpoint.summary
    assert np.isfinite(result.history[-1].train_loss) and result.history[-1].val_acc is not None


def test_bad_requests_are_clear_errors(trained):
    ws, _, _, _ = trained
    context = make_context(ws, Runtime())
    with pytest.raises(MissingArtefactError):
        train(train_options("dunet", dict(name="x", target="nope", epochs=1)), context)
    with pytest.raises(MissingArtefactError):
        train(train_options("dunet", dict(name="x", adv=["pgd-eps1"], epochs=1)), context)
    with pytest.raises(InputError):
        train(train_options("dunet", dict(name="x", adv=["fgsm-eps40_255"], online="fgsm", epochs=1)), context)
    other = write_cache(Workspace(ws.root / "other"), classes=3)
    with pytest.raises(MismatchError):
        train(train_options("dunet", dict(name="x", epochs=1)), make_context(ws, Runtime(), data=str(other)))


def test_clean_logits_computed_once_equal_the_per_batch_ones(trained):
    """The logits guide keeps f(clean) of the train split; a batch's loss is the same as with f(clean)
    recomputed on the batch (the target is frozen in eval mode)."""
    ws, _, _, _ = trained
    options = train_options("dunet", dict(name="dn-cached", width_mult=0.125, epochs=1, batch_size=16,
                                          adv=["fgsm-eps40_255"], seed=0)).resolved(16)
    recipe = DunetRecipe(options, make_context(ws, Runtime()))
    try:
        table = recipe._clean_logits
        assert table is not None and table.shape == (recipe.context.data_info.split_counts["train"], 4)
        batch = next(iter(recipe.train_batches.epoch(0, 0)))
        assert batch.clean_rows is not None and len(batch.clean_rows) == len(batch)
        with torch.no_grad():
            cached = recipe.batch_loss(batch, recipe.module).loss
            recipe._clean_logits = None
            recomputed = recipe.batch_loss(batch, recipe.module).loss
            wrong = guided_loss("logits", recipe.target, None, batch.images, recipe.module(batch.adv_images),
                                torch.zeros(len(batch), table.shape[1]))[0]
        assert torch.allclose(cached, recomputed, atol=1e-6) and not torch.allclose(cached, wrong)
    finally:
        recipe.close()
