"""The training loop end to end on tiny models: every architecture, resume, freeze, validation, failures."""

from __future__ import annotations

import shutil

import pytest
import torch
from training_setup import PHOTOS, TINY_MODELS, tiny_config

import irconstyle
from irconstyle import load_model
from irconstyle.inference import restore_tensor
from irconstyle.training import (
    ConfigError,
    Trainer,
    TrainingCheckpointError,
    TrainingDivergedError,
    config_from_dict,
)
from irconstyle.training import objective as objective_module
from irconstyle.training import validation as validation_module
from irconstyle.training.checkpointing import atomic_save, load_training_checkpoint, periodic_name
from irconstyle.training.distributed import init_distributed


@pytest.mark.parametrize("model", sorted(TINY_MODELS))
def test_each_model_trains_and_exports_a_loadable_model(model, tmp_path):
    config = tiny_config(model, **{"train.total_iters": 2})
    result = Trainer(config, output_dir=tmp_path, progress=False).run()
    assert result.status == "completed" and result.iteration == 2
    state = load_training_checkpoint(result.last_checkpoint)
    assert state["iteration"] == 2
    restorer = load_model(result.final_weights)
    assert not hasattr(getattr(restorer, "constyle", None), "queue")  # exported in the inference layout
    image = torch.rand(1, 3, 40, 36)
    with torch.no_grad():
        restored = restorer(image)
    assert restored.shape == image.shape and torch.isfinite(restored).all()


@pytest.fixture(scope="module")
def validated_run(tmp_path_factory):
    """One short run with validation, TensorBoard and a best checkpoint, shared by the tests below."""
    output = tmp_path_factory.mktemp("validated")
    config = tiny_config(**{
        "train.total_iters": 4,
        "val.every": 2,
        "val.samples": 1,
        "log.tensorboard": True,
        "data.val": {"dataset": "degraded", "options": {"clean_dirs": str(PHOTOS / "val"), "task": "denoise"}},
    })
    return config, output, Trainer(config, output_dir=output, progress=False).run()


def test_validation_keeps_the_best_checkpoint_and_logs(validated_run):
    config, output, result = validated_run
    assert result.best is not None and result.best.metric == "psnr_y"
    best = load_training_checkpoint(output / "checkpoints" / "best.ckpt")
    assert best["iteration"] == result.best.iteration
    assert best["best"]["value"] == pytest.approx(result.best.value)
    assert load_model(output / "model_best.safetensors") is not None
    assert (output / "config.yaml").is_file()
    log = (output / "train.log").read_text()
    assert "validation psnr_rgb=" in log and "finished 4 iterations" in log
    assert list((output / "tensorboard").glob("events.out.tfevents.*"))
    periodic = sorted(p.name for p in (output / "checkpoints").glob("iter_*.ckpt"))
    assert periodic == [periodic_name(2), periodic_name(4)]


def test_a_fresh_run_refuses_a_folder_with_checkpoints(validated_run):
    config, output, _ = validated_run
    with pytest.raises(TrainingCheckpointError, match="--resume auto"):
        Trainer(config, output_dir=output, progress=False).run()


def test_resume_with_a_changed_recipe_names_the_difference(validated_run):
    config, output, _ = validated_run
    val = config.to_dict()["data"]["val"]
    changed = tiny_config(**{"train.total_iters": 6, "train.optimizer.lr": 1e-3, "data.val": val})
    with pytest.raises(TrainingCheckpointError, match=r"train\.optimizer\.lr: checkpoint 0\.0003, now 0\.001"):
        Trainer(changed, output_dir=output, resume="auto", progress=False).run()


def test_resuming_an_older_checkpoint_refuses_to_mix_histories(validated_run):
    config, output, _ = validated_run
    with pytest.raises(TrainingCheckpointError, match=r"past iteration 2 .*iter_00000004\.ckpt"):
        Trainer(config, output_dir=output, resume=output / "checkpoints" / periodic_name(2), progress=False).run()


def test_resume_allows_moved_data_and_a_longer_run(validated_run, tmp_path):
    config, shared_output, _ = validated_run
    output = shutil.copytree(shared_output, tmp_path / "run")
    raw = config.to_dict()
    raw["train"]["total_iters"] = 5
    raw["data"]["train"]["options"]["clean_dirs"] = str(tmp_path / "moved")
    (tmp_path / "moved").symlink_to(PHOTOS / "train")
    result = Trainer(config_from_dict(raw), output_dir=output, resume="auto", progress=False).run()
    assert result.iteration == 5 and result.status == "completed"


def _states_equal(a: dict, b: dict) -> list[str]:
    return [key for key in a if not torch.equal(a[key], b[key])]


def test_resumed_run_is_bitwise_identical_to_an_uninterrupted_one(tmp_path):
    """Mixup, the freeze at iteration 3, epoch boundaries (3 batches per epoch) and data workers."""
    overrides = {
        "train.total_iters": 6, "train.constyle_iters": 3, "train.mixup.enabled": True, "data.train.num_workers": 2
    }
    straight = Trainer(tiny_config(**overrides), output_dir=tmp_path / "a", progress=False).run()

    first_leg = tiny_config(**{**overrides, "train.total_iters": 2})
    Trainer(first_leg, output_dir=tmp_path / "b", progress=False).run()
    resumed = Trainer(tiny_config(**overrides), output_dir=tmp_path / "b", resume="auto", progress=False).run()

    a, b = load_training_checkpoint(straight.last_checkpoint), load_training_checkpoint(resumed.last_checkpoint)
    assert _states_equal(a["model"], b["model"]) == []
    assert _states_equal(a["ema"], b["ema"]) == []
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for index, slots in a["optimizer"]["state"].items():
        assert _states_equal(slots, b["optimizer"]["state"][index]) == []


def test_resume_may_replan_the_future_but_not_the_past(tmp_path):
    """A longer schedule and a later freeze, decided at iteration 2, give the run the new plan would have given."""
    plan = {"train.total_iters": 6, "train.constyle_iters": 4, "train.schedule.periods": [2, 4]}
    straight = Trainer(tiny_config(**plan), output_dir=tmp_path / "a", progress=False).run()
    Trainer(tiny_config(**{"train.total_iters": 2}), output_dir=tmp_path / "b", progress=False).run()
    for past_changing, message in [
        ({"train.schedule.eta_mins": [1e-4, 1e-6]}, r"train\.schedule\.eta_mins"),
        ({"train.constyle_iters": 1}, r"train\.constyle_iters: checkpoint None, now 1"),
    ]:
        with pytest.raises(TrainingCheckpointError, match=message):
            Trainer(
                tiny_config(**{**plan, **past_changing}), output_dir=tmp_path / "b", resume="auto", progress=False
            ).run()
    replanned = Trainer(tiny_config(**plan), output_dir=tmp_path / "b", resume="auto", progress=False).run()

    a, b = load_training_checkpoint(straight.last_checkpoint), load_training_checkpoint(replanned.last_checkpoint)
    assert a["frozen"] and b["frozen"]
    assert _states_equal(a["model"], b["model"]) == []
    assert _states_equal(a["ema"], b["ema"]) == []


def test_checkpoint_from_before_a_new_setting_resumes_at_its_default(tmp_path):
    """A setting added after a checkpoint was written (train.ema.warmup here) counts at its default value."""
    result = Trainer(tiny_config(**{"train.total_iters": 2}), output_dir=tmp_path, progress=False).run()
    state = load_training_checkpoint(result.last_checkpoint)
    del state["config"]["train"]["ema"]["warmup"]
    atomic_save(state, result.last_checkpoint)
    resumed = Trainer(tiny_config(**{"train.total_iters": 3}), output_dir=tmp_path, resume="auto", progress=False)
    assert resumed.run().iteration == 3
    with pytest.raises(TrainingCheckpointError, match=r"train\.ema\.warmup: checkpoint False, now True"):
        Trainer(
            tiny_config(**{"train.total_iters": 4, "train.ema.warmup": True}), output_dir=tmp_path, resume="auto",
            progress=False,
        ).run()


@pytest.mark.parametrize("mode", ["eval", "published"])
def test_freeze_at_constyle_iters(mode, tmp_path):
    config = tiny_config(**{"train.total_iters": 3, "train.constyle_iters": 1, "train.freeze": mode})
    trainer = Trainer(config, output_dir=tmp_path, progress=False)
    trainer.run()
    after_freeze = load_training_checkpoint(tmp_path / "checkpoints" / periodic_name(2))
    final = load_training_checkpoint(tmp_path / "checkpoints" / periodic_name(3))
    assert final["frozen"] and len(final["optimizer"]["param_groups"]) == 1
    assert not any(p.requires_grad for p in trainer.model.constyle.parameters())

    parameter_names = {name for name, _ in trainer.model.named_parameters()}

    def part(state, prefix, buffers):
        return {
            k: v for k, v in state["model"].items() if k.startswith(prefix) and (k not in parameter_names) == buffers
        }

    # The query encoder's weights do not move after the freeze, in both modes.
    assert _states_equal(part(after_freeze, "constyle.encoder.", False), part(final, "constyle.encoder.", False)) == []
    moved_stats = _states_equal(part(after_freeze, "constyle.encoder.", True), part(final, "constyle.encoder.", True))
    key_encoder = "constyle.key_encoder."
    moved_key = _states_equal(part(after_freeze, key_encoder, False), part(final, key_encoder, False))
    ptr_moved = not torch.equal(after_freeze["model"]["constyle.queue_ptr"], final["model"]["constyle.queue_ptr"])
    if mode == "eval":  # our fix: eval mode, no momentum update, no enqueue
        assert not trainer.model.constyle.training
        assert moved_stats == [] and moved_key == [] and not ptr_moved
    else:  # as published: batch statistics, momentum update and queue keep running
        assert trainer.model.constyle.training
        assert moved_stats and moved_key and ptr_moved


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    calls = []

    def failing_l1(restored, target):
        calls.append(1)
        loss = torch.nn.functional.l1_loss(restored, target)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setitem(objective_module.PIXEL_LOSSES, "l1", failing_l1)
    config = tiny_config(**{"train.total_iters": 4})
    expected = r"iteration 3 \(total=nan.*last good checkpoint is .*iter_00000002"
    with pytest.raises(TrainingDivergedError, match=expected):
        Trainer(config, output_dir=tmp_path, progress=False).run()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [periodic_name(2)]
    assert not (tmp_path / "model_final.safetensors").exists()


def test_non_finite_gradient_stops_when_clipping(tmp_path, monkeypatch):
    def l1_with_infinite_gradient(restored, target):
        mean = restored.mean()
        return torch.nn.functional.l1_loss(restored, target) + torch.sqrt(mean - mean.detach())  # d√x at 0 = ∞

    monkeypatch.setitem(objective_module.PIXEL_LOSSES, "l1", l1_with_infinite_gradient)
    config = tiny_config(**{"train.total_iters": 2, "train.grad_clip": 1.0})
    with pytest.raises(TrainingDivergedError, match="non-finite gradient norm at iteration 1.*no checkpoint"):
        Trainer(config, output_dir=tmp_path, progress=False).run()


def test_dataset_problems_are_config_errors_naming_the_section(tmp_path):
    config = tiny_config(**{"data.train.options.clean_dirs": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match=r"data\.train: .*missing: no such folder"):
        Trainer(config, output_dir=tmp_path / "run", progress=False).run()


def test_a_new_run_can_start_from_exported_weights(tmp_path, caplog):
    """``model.init_from``: the inference weights load strictly; the momentum encoder starts as their copy."""
    first = Trainer(tiny_config(**{"train.total_iters": 2}), output_dir=tmp_path / "a", progress=False).run()
    weights = load_model(first.final_weights).state_dict()

    second = Trainer(
        tiny_config(**{"model.init_from": str(first.final_weights)}), output_dir=tmp_path / "b", progress=False
    )
    second.context = init_distributed("cpu")
    caplog.set_level("INFO", logger="irconstyle.training")
    second._setup()
    state = second.model.state_dict()
    assert _states_equal(weights, {k: state[k] for k in weights}) == []
    key_encoder = {k.replace("key_encoder", "encoder"): v for k, v in state.items() if ".key_encoder." in k}
    assert key_encoder and _states_equal({k: weights[k] for k in key_encoder}, key_encoder) == []
    assert f"starting from the weights in {first.final_weights} (sha256 " in caplog.text

    wider = tiny_config(**{"model.init_from": str(first.final_weights), "model.options.width": 16})
    with pytest.raises(ConfigError, match=r"model\.init_from: .*model_final\.safetensors: does not fit .*mis-shaped"):
        Trainer(wider, output_dir=tmp_path / "c", progress=False).run()
    missing = tiny_config(**{"model.init_from": str(tmp_path / "none.safetensors")})
    with pytest.raises(ConfigError, match=r"model\.init_from: .*none\.safetensors: no such checkpoint file"):
        Trainer(missing, output_dir=tmp_path / "d", progress=False).run()


def test_a_new_run_can_grow_a_deeper_model_from_weights(tmp_path, caplog):
    """``model.init_deeper``: extra NAFBlocks start as the identity; without the flag the file must fit."""
    first = Trainer(tiny_config(**{"train.total_iters": 2}), output_dir=tmp_path / "a", progress=False).run()
    deeper = {"model.init_from": str(first.final_weights), "model.options.bottleneck_blocks": 2}

    grown = Trainer(tiny_config(**deeper, **{"model.init_deeper": True}), output_dir=tmp_path / "b", progress=False)
    grown.context = init_distributed("cpu")
    caplog.set_level("INFO", logger="irconstyle.training")
    grown._setup()
    weights = load_model(first.final_weights).state_dict()
    state = grown.model.state_dict()
    assert _states_equal(weights, {k: state[k] for k in weights}) == []
    assert not state["body.bottleneck.1.mixer_scale"].any() and not state["body.bottleneck.1.ffn_scale"].any()
    assert "1 new blocks start as the identity: body.bottleneck.1" in caplog.text

    with pytest.raises(ConfigError, match=r"model\.init_from: .*does not fit .*missing: body\.bottleneck\.1\."):
        Trainer(tiny_config(**deeper), output_dir=tmp_path / "c", progress=False).run()
    with pytest.raises(ConfigError, match=r"model\.init_deeper: needs model\.init_from"):
        tiny_config(**{"model.init_deeper": True})


def test_a_checkpoint_whose_config_no_longer_validates_is_named(tmp_path):
    result = Trainer(tiny_config(**{"train.total_iters": 2}), output_dir=tmp_path, progress=False).run()
    state = load_training_checkpoint(result.last_checkpoint)
    state["config"]["train"]["removed_setting"] = 1
    atomic_save(state, result.last_checkpoint)
    expected = r"iter_00000002\.ckpt: the config it was trained with: train\.removed_setting: unknown key"
    with pytest.raises(ConfigError, match=expected):
        Trainer(tiny_config(**{"train.total_iters": 3}), output_dir=tmp_path, resume="auto", progress=False).run()


def test_val_tile_validates_in_tiles_and_becomes_the_exported_native_tile(tmp_path, monkeypatch):
    tiles_used = []

    def spying_restore(model, image, **options):
        tiles_used.append((options["tile"], tuple(image.shape[-2:])))
        return restore_tensor(model, image, **options)

    monkeypatch.setattr(validation_module, "restore_tensor", spying_restore)
    val = {"dataset": "degraded", "options": {"clean_dirs": str(PHOTOS / "val"), "task": "denoise"}}
    config = tiny_config(**{"train.total_iters": 2, "val.every": 2, "val.samples": 0, "val.tile": 32, "data.val": val})
    result = Trainer(config, output_dir=tmp_path / "run", progress=False).run()
    assert tiles_used == [(32, (128, 128))] * 2  # the two validation photos, larger than a tile
    assert irconstyle.load(result.final_weights).native_tile == 32
    assert irconstyle.load(tmp_path / "run" / "model_best.safetensors").native_tile == 32
    untiled = Trainer(tiny_config(**{"train.total_iters": 2}), output_dir=tmp_path / "plain", progress=False).run()
    assert irconstyle.load(untiled.final_weights).native_tile is None
    with pytest.raises(ConfigError, match=r"val\.tile \(12\) must be a multiple of 8"):
        Trainer(tiny_config(**{"val.tile": 12}), output_dir=tmp_path / "bad", progress=False).run()
