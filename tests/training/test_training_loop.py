"""The training loop on a tiny synthetic cache: every method learns, runs are repeatable,
--resume continues exactly, divergence keeps the last good state, wrong inputs are clear errors."""

from __future__ import annotations

import pytest
import torch

from defendr_cli.core.errors import (ArtefactExistsError, CorruptArtefactError, InputError, MismatchError,
                                     MissingArtefactError, TrainingDivergedError)
from defendr_cli.core.io.checkpoint import read_checkpoint
from defendr_cli.core.io.checkpoint_record import Reference
from defendr_cli.core.models.loading import check_checkpoint_against_cache, load_model
from defendr_cli.core.progress import NullReporter
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.training.loop import make_context, train
from defendr_cli.core.training.options import TrainOptions
from defendr_cli.core.training.recipes.base import RecipeSpec, StepResult
from defendr_cli.core.training.recipes.baseline import BaselineOptions, ClassifierRecipe
from defendr_cli.core.training.recipes.registry import get_recipe, register_recipe, train_options, unregister_recipe
from defendr_cli.core.training.resume import best_path, resume_path
from tests.training.train_helpers import write_noise_adv_set, write_tiny_cache

QUICK = dict(arch="tinycnn", epochs=3, batch_size=12, lr=0.02)


def run(workspace, reporter=None, **overrides):
    options = train_options(overrides.pop("method", "baseline"), {**QUICK, **overrides})
    return train(options, make_context(workspace, Runtime(), None, reporter))


@pytest.fixture
def with_adv_set(workspace, tiny_cache):
    write_noise_adv_set(workspace, tiny_cache, "noise-eps0.05-none-train")
    return workspace


@pytest.mark.parametrize("method, extra", [
    ("baseline", {}),
    ("clp", {}),
    ("lsq", {}),
    ("adv", {"adv": ["noise-eps0.05"]}),
    ("adv", {"online": "fgsm", "eps": "8/255"}),
    ("alp", {"adv": ["noise-eps0.05"]}),
    ("alp", {"online": "pgd", "eps": "4/255", "attack_steps": 2}),
])
def test_each_method_decreases_its_loss(with_adv_set, method, extra):
    result = run(with_adv_set, method=method, name=f"{method}-{len(extra)}", **extra)
    losses = [record.train_loss for record in result.history]
    assert losses[-1] < losses[0], losses
    checkpoint = read_checkpoint(result.path)
    assert checkpoint.method == method and checkpoint.kind == "classifier"
    assert checkpoint.hparams["seed"] == 0 and len(checkpoint.history) == 3
    roles = [parent.role for parent in checkpoint.provenance.parents]
    assert roles[0] == "data" and (("adversarial-set" in roles) == bool(extra.get("adv")))
    assert checkpoint.summary.startswith(method)


def test_doubled_dataset_has_twice_the_batches(with_adv_set):
    recipe = get_recipe("adv").factory(train_options("adv", {"adv": ["noise-eps0.05"], **QUICK}).resolved(16),
                                       make_context(with_adv_set, Runtime(), None))
    try:
        assert recipe.train_batches.num_items == 2 * 36
    finally:
        recipe.close()


def test_same_seed_gives_identical_weights(workspace, tiny_cache):
    first = read_checkpoint(run(workspace, name="a", seed=3).path)
    second = read_checkpoint(run(workspace, name="b", seed=3).path)
    other = read_checkpoint(run(workspace, name="c", seed=4).path)
    for key, value in first.state_dict.items():
        assert torch.equal(value, second.state_dict[key]), key
    assert any(not torch.equal(v, other.state_dict[k]) for k, v in first.state_dict.items())


class InterruptAfter(NullReporter):
    """Raises KeyboardInterrupt on the n-th training step, like a Ctrl-C."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.left = steps
        reporter = self

        class _Task:
            def advance(self, n=1, **fields):
                reporter.left -= n
                if reporter.left <= 0:
                    raise KeyboardInterrupt

            def update(self, **fields):
                pass

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return None

        self._task = _Task()

    def task(self, description, total=None):
        return self._task


@pytest.mark.parametrize("extra", [{}, {"method": "adv", "online": "pgd", "attack_steps": 2}])
def test_resume_after_interruption_matches_uninterrupted_run(workspace, tiny_cache, extra):
    whole = run(workspace, name="whole", **extra)
    with pytest.raises(KeyboardInterrupt):  # 3 steps per epoch: stop in the middle of epoch 2
        run(workspace, reporter=InterruptAfter(5), name="cut", **extra)
    assert resume_path(workspace, "cut").exists()
    resumed = train(TrainOptions(name="cut", resume=True, method=extra.get("method", "baseline")),
                    make_context(workspace, Runtime(), None))
    assert resumed.start_epoch == 1
    assert not resume_path(workspace, "cut").exists()
    a, b = read_checkpoint(whole.path), read_checkpoint(resumed.path)
    for key, value in a.state_dict.items():
        assert torch.equal(value, b.state_dict[key]), key
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(a.history) == strip(b.history)


def test_resume_without_interrupted_run_is_missing(workspace, tiny_cache):
    with pytest.raises(MissingArtefactError, match="no interrupted run"):
        run(workspace, resume=True)


def test_resume_with_another_method_or_setting_is_a_mismatch(workspace, tiny_cache):
    with pytest.raises(KeyboardInterrupt):
        run(workspace, reporter=InterruptAfter(5), name="t5")
    context = make_context(workspace, Runtime(), None)
    with pytest.raises(MismatchError, match="trains method 'baseline', not 'lsq'"):
        train(train_options("lsq", {"name": "t5", "resume": True}), context)
    with pytest.raises(MismatchError, match="--epochs 6 \\(the run has 3\\)"):
        train(train_options("baseline", {"name": "t5", "resume": True, "epochs": 6}), context)
    resumed = train(train_options("baseline", {"name": "t5", "resume": True, "epochs": 3, "workers": 0}), context)
    assert resumed.start_epoch == 1 and len(resumed.history) == 3


@pytest.mark.parametrize("change", [{"epoch": "1"}, {"epoch": -1}, {"options": ["x"]}, {"history": None},
                                    {"options": {"method": "nope"}}, {"options": {"method": "baseline", "lr": "x"}}])
def test_a_damaged_resume_state_is_one_line_corrupt(workspace, tiny_cache, change):
    with pytest.raises(KeyboardInterrupt):
        run(workspace, reporter=InterruptAfter(5), name="r")
    path = resume_path(workspace, "r")
    torch.save({**torch.load(path, weights_only=True), **change}, path)
    with pytest.raises(CorruptArtefactError) as info:
        train(TrainOptions(name="r", resume=True), make_context(workspace, Runtime(), None))
    assert "\n" not in str(info.value)


def test_existing_model_needs_force(workspace, tiny_cache):
    run(workspace, epochs=1)
    with pytest.raises(ArtefactExistsError, match="--force.*--resume"):
        run(workspace, epochs=1)
    run(workspace, epochs=1, force=True)


def test_interrupted_force_run_keeps_the_previous_model_byte_for_byte(workspace, tiny_cache):
    first = run(workspace, epochs=1, name="m")
    assert first.checkpoint.complete is True and read_checkpoint(first.path).complete is True
    before = first.path.read_bytes()
    with pytest.raises(KeyboardInterrupt):  # 3 steps per epoch: epoch 1 saved, stopped in epoch 2
        run(workspace, reporter=InterruptAfter(5), name="m", force=True, epochs=3, seed=1)
    assert first.path.read_bytes() == before
    side = best_path(workspace, "m")
    assert read_checkpoint(side).complete is False and "m" == load_model(workspace, "m").name
    with pytest.raises(CorruptArtefactError, match="did not complete"):
        load_model(workspace, side)
    resumed = train(TrainOptions(name="m", resume=True, method="baseline"), make_context(workspace, Runtime(), None))
    assert resumed.path.read_bytes() != before and len(read_checkpoint(resumed.path).history) == 3
    assert read_checkpoint(resumed.path).complete is True and not side.exists()


class DivergingRecipe(ClassifierRecipe):
    """Clean CE, but the loss turns NaN in the second epoch."""

    calls = 0

    def batch_loss(self, batch, forward):
        out = super().batch_loss(batch, forward)
        DivergingRecipe.calls += 1
        if DivergingRecipe.calls > 4:
            return StepResult(out.loss * float("nan"), out.logits, out.labels)
        return out


def test_divergence_stops_and_keeps_last_good_checkpoint(workspace, tiny_cache):
    register_recipe(RecipeSpec("diverging-test", BaselineOptions, DivergingRecipe, kind="classifier"))
    try:
        with pytest.raises(TrainingDivergedError, match="epoch 2, step 2"):
            run(workspace, method="diverging-test", name="div")
    finally:
        unregister_recipe("diverging-test")
    assert not workspace.path_for("model", "div").exists()  # written only when a run completes
    side = read_checkpoint(best_path(workspace, "div"))
    assert [r["epoch"] for r in side.history] == [1] and side.complete is False
    assert all(torch.isfinite(v).all() for v in side.state_dict.values() if v.is_floating_point())
    assert resume_path(workspace, "div").exists()


def test_checkpoint_against_another_cache_is_a_mismatch(workspace, tiny_cache, tmp_path):
    from defendr_cli.core.io.reader import read_cache_info

    result = run(workspace, epochs=1)
    checkpoint = read_checkpoint(result.path)
    check_checkpoint_against_cache(checkpoint, read_cache_info(tiny_cache))
    other = write_tiny_cache(tmp_path / "four.h5", num_classes=4)
    with pytest.raises(MismatchError, match="other classes"):
        check_checkpoint_against_cache(checkpoint, read_cache_info(other))
    bigger = write_tiny_cache(tmp_path / "big.h5", image_size=24)
    with pytest.raises(MismatchError, match="16px"):
        check_checkpoint_against_cache(checkpoint, read_cache_info(bigger))
    assert load_model(workspace, result.name).checkpoint.data.class_ids == tuple(read_cache_info(tiny_cache).class_ids)


def test_bad_options_are_input_errors(with_adv_set):
    with pytest.raises(InputError, match="exactly one"):
        run(with_adv_set, method="adv")
    with pytest.raises(InputError, match="--optimizer"):
        run(with_adv_set, optimizer="rmsprop")
    with pytest.raises(InputError, match="unknown training method"):
        run(with_adv_set, method="magic")
    with pytest.raises(MissingArtefactError, match="defendr attack"):
        run(with_adv_set, method="alp", adv=["pgd-eps8_255"])


def test_freeze_backbone_leaves_backbone_weights_unchanged(workspace, tiny_cache):
    result = run(workspace, arch="tinyresnet", epochs=1, freeze_backbone=True, name="frozen")
    trained = read_checkpoint(result.path).state_dict
    torch.manual_seed(0)  # the loop seeds with --seed 0 before building the model
    from defendr_cli.core.runtime import seed_everything
    from defendr_cli.core.models.registry import build_classifier

    seed_everything(0)
    fresh = build_classifier("tinyresnet", 3).state_dict()
    assert torch.equal(trained["net.stem.0.weight"], fresh["net.stem.0.weight"])
    assert torch.equal(trained["net.layer1.0.bn1.running_mean"], fresh["net.layer1.0.bn1.running_mean"])
    assert not torch.equal(trained["net.fc.weight"], fresh["net.fc.weight"])


def test_worker_processes_give_the_same_weights_as_in_process_loading(workspace, tiny_cache):
    inline = read_checkpoint(run(workspace, name="inline", epochs=1).path).state_dict
    workers = read_checkpoint(run(workspace, name="workers", epochs=1, workers=1).path).state_dict
    assert all(torch.equal(value, workers[key]) for key, value in inline.items())


def test_bf16_autocast_trains_with_finite_loss(workspace, tiny_cache):
    result = train(train_options("baseline", {**QUICK, "epochs": 2}), make_context(workspace, Runtime(precision="bf16"), None))
    losses = [record.train_loss for record in result.history]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    assert all(v.dtype != torch.bfloat16 for v in read_checkpoint(result.path).state_dict.values())


def test_pretrained_file_is_recorded_as_a_parent(workspace, tiny_cache, tmp_path):
    import torchvision

    from defendr_cli.core.fingerprint import file_fingerprint

    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    result = run(workspace, arch="resnet18", pretrained=str(weights), freeze_backbone=True, epochs=1, name="ft")
    parents = read_checkpoint(result.path).provenance.parents
    assert Reference("pretrained", "resnet18.pth", file_fingerprint(weights)) in parents
    assert load_model(workspace, "ft").module.head.out_features == 3
