"""ConStyle v2's stage 1 (``train.objective: prompter``): its losses, its runs, resuming them, and stage 2 loading
what it writes."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import irconstyle
from irconstyle.cli import main
from irconstyle.data.degradations import DETECTION_CLASSES
from irconstyle.models import losses
from irconstyle.models.checkpoint import read_safetensors
from irconstyle.models.constyle import ConStyleOutput, ConStyleV2Prompter, ContrastOutput
from irconstyle.training import ConfigError, Trainer, config_from_dict, load_config
from irconstyle.training.checkpointing import load_training_checkpoint
from irconstyle.training.config import LossSection
from irconstyle.training.objective import PrompterObjective

REPO = Path(__file__).resolve().parents[2]
STAGE1 = REPO / "configs" / "smoke_v2_stage1.yaml"
STAGE2 = REPO / "configs" / "smoke_v2_stage2.yaml"

# --- the losses, on tensors small enough to work out by hand ------------------------------------------------------

WEIGHTS = LossSection(infonce_weight=2.0, content_weight=3.0, style_weight=5.0, class_weight=7.0, kl_weight=11.0)
LN3 = math.log(3.0)


def _contrast(**changes) -> ContrastOutput:
    """B = 2, D = 2, two classes; each value below is derived in the comments of the test that reads it."""
    parts = {
        "encoded": ConStyleOutput(
            latent_z=torch.tensor([[1.0, 0.0], [0.0, 1.0]]), latent_q=torch.tensor([[1.0, 1.0], [0.0, 0.0]]),
            features=(),  # type: ignore[arg-type]  # the prompter's losses never read the maps
        ),
        "key": torch.tensor([[1.0, 0.0], [0.0, 2.0]]),
        "negatives": (torch.zeros(2, 2), torch.zeros(2, 2)),
        "logits": torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]),
        "query_classes": torch.tensor([[0.0, LN3], [LN3, 0.0]], requires_grad=True),  # softmax [¼, ¾], [¾, ¼]
        "key_classes": torch.tensor([[0.0, 0.0], [0.0, 0.0]]),  # softmax [½, ½]
    }
    return ContrastOutput(**{**parts, **changes})


def _objective(contrast: ContrastOutput, **options) -> PrompterObjective:
    stub = SimpleNamespace(constyle=SimpleNamespace(contrast=lambda degraded, clean: contrast))
    return PrompterObjective(stub, options.pop("weights", WEIGHTS), **{"class_iters": 3, "kl_iters": None, **options})


LABELS = torch.tensor([1, 1])
IMAGES = torch.zeros(2, 3, 8, 8)


def test_each_term_against_its_hand_derived_value():
    total, parts = _objective(_contrast())(IMAGES, IMAGES, LABELS)
    expected = {
        # row 1: −log(e² / (e² + 2)); row 2: three equal logits, log 3
        "infonce": (math.log(1 + 2 * math.exp(-2)) + LN3) / 2,
        # (q − k)² = [0, 1, 0, 4]
        "content": 5 / 4,
        # G = X·Xᵀ / (B·D = 4) against zero negatives: G(z) = I/4 → MSE 2/16/4; G(q) = [[½, 0], [0, 0]] → ¼/4
        "style": -(1 / 32) - (1 / 16),
        # label 1: −log ¾ and −log ¼
        "class": (math.log(4 / 3) + math.log(4)) / 2,
        # KL([½, ½] ‖ [¼, ¾]) = ½ log 2 + ½ log ⅔ in both rows
        "kl": 0.5 * math.log(4 / 3),
        "accuracy": 0.5,  # row 1 predicts class 1, row 2 class 0
    }
    assert parts.keys() == expected.keys()
    for name, value in expected.items():
        assert parts[name].item() == pytest.approx(value, rel=1e-6), name
    weighted = sum(getattr(WEIGHTS, f"{name}_weight") * value for name, value in expected.items() if name != "accuracy")
    assert total.item() == pytest.approx(weighted, rel=1e-6)


def test_distillation_is_kl_of_the_key_into_the_query_and_teaches_only_the_query():
    query = torch.tensor([[0.0, LN3]], requires_grad=True)
    key = torch.tensor([[0.0, 0.0]], requires_grad=True)
    loss = losses.distillation_loss(query, key)
    reverse = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)  # KL(query ‖ key), the other direction
    assert loss.item() == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)
    assert abs(loss.item() - reverse) > 1e-2
    loss.backward()
    # ∂KL(p_key ‖ softmax(q)) / ∂q = softmax(q) − p_key: descending it moves the query towards the key
    torch.testing.assert_close(query.grad, torch.tensor([[0.25 - 0.5, 0.75 - 0.5]]), rtol=0, atol=1e-7)
    assert key.grad is None


def test_classification_stops_after_class_iters_and_distillation_after_kl_iters():
    objective = _objective(_contrast(), class_iters=3, kl_iters=4)
    seen = {}
    for iteration in range(1, 6):
        objective.iteration = iteration
        total, parts = objective(IMAGES, IMAGES, LABELS)
        seen[iteration] = {name for name in ("class", "kl") if name in parts}
        contrastive = sum(getattr(WEIGHTS, f"{name}_weight") * parts[name] for name in ("infonce", "content", "style"))
        others = sum(getattr(WEIGHTS, f"{name}_weight") * parts[name] for name in seen[iteration])
        assert total.item() == pytest.approx((contrastive + others).item(), rel=1e-6)
    assert seen == {1: {"class", "kl"}, 2: {"class", "kl"}, 3: {"class", "kl"}, 4: {"kl"}, 5: set()}
    throughout = _objective(_contrast(), kl_iters=None)
    throughout.iteration = 10**6
    assert "kl" in throughout(IMAGES, IMAGES, LABELS)[1]  # null: throughout


def test_a_zero_weight_leaves_its_term_out():
    weights = LossSection(style_weight=0.0, kl_weight=0.0)
    _, parts = _objective(_contrast(), weights=weights)(IMAGES, IMAGES, LABELS)
    assert set(parts) == {"infonce", "content", "class", "accuracy"}


def test_contrast_gives_both_encoders_class_logits():
    torch.manual_seed(0)
    prompter = ConStyleV2Prompter(classes=3, contrastive=True, queue_size=8, momentum=0.5).eval()
    with torch.no_grad():
        prompter.constyle.key_encoder.classifier[3].bias.add_(1.0)  # the two encoders differ
    degraded, clean = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    contrast = prompter.constyle.contrast(degraded, clean)
    assert contrast.query_classes.requires_grad and not contrast.key_classes.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(contrast.query_classes, prompter.classify(degraded)[1], rtol=0, atol=0)
        expected_key = prompter.constyle.key_encoder.classify(clean)[1]  # after this step's momentum update
    torch.testing.assert_close(contrast.key_classes, expected_key, rtol=0, atol=0)
    assert contrast.key_classes.shape == (2, 3)


# --- the config -----------------------------------------------------------------------------------------------


def _raw(**changes) -> dict:
    import yaml

    from irconstyle.training.schema import set_values

    return set_values(yaml.safe_load(STAGE1.read_text()), changes)


@pytest.mark.parametrize(("changes", "message"), [
    ({"model.name": "constyle_nafnet"}, "model.name: the prompter objective trains constyle_v2_prompter"),
    ({"model.options": {"classes": 6}}, "model.options.classes: set by the trainer from the training set's classes"),
    ({"model.options": {"queue_size": 8}}, "model.options.queue_size: set by the trainer from model.constyle"),
    ({"data.train.dataset": "degraded", "data.train.options": {"clean_dirs": "x", "task": "denoise"}},
     "data.train.dataset: the prompter objective needs views with classes"),
    ({"val.metric": "psnr_y"}, "val.metric: a prompter run is validated by its classification accuracy"),
    ({"train.constyle_iters": 5}, "train.constyle_iters: the prompter objective trains ConStyle alone"),
    ({"train.mixup": {"enabled": True}}, "train.mixup.enabled: mixing views would mix their labels"),
    ({"train.class_iters": -1}, "train.class_iters: must be >= 0"),
    ({"train.losses": {"infonce_weight": 0, "content_weight": 0, "style_weight": 0, "class_weight": 0,
                       "kl_weight": 0}}, "train.losses: every loss of the prompter objective has weight 0"),
    ({"train.objective": "restore"}, "model.name: 'constyle_v2_prompter' is trained with train.objective: prompter"),
    ({"train.objective": "restore", "model.name": "constyle_nafnet"},
     "val.metric: accuracy scores a prompter run"),
])
def test_prompter_config_errors(changes, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(_raw(**changes))


# --- runs -----------------------------------------------------------------------------------------------------


def _scalars(folder: Path) -> dict[str, list[int]]:
    events = EventAccumulator(str(folder)).Reload()
    return {tag: [event.step for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def _train(config: Path, output: Path, *overrides: str) -> int:
    options = [part for override in overrides for part in ("--set", override)]
    return main(["train", str(config), "--output", str(output), "--quiet", *options])


def test_two_iterations_of_stage_1_through_the_cli(tmp_path, monkeypatch):
    """Every term is logged (the classification loss only until class_iters) and the prompter exported."""
    monkeypatch.chdir(REPO)  # the config's photo folders are relative to the repository root
    assert _train(STAGE1, tmp_path, "train.total_iters=2", "train.class_iters=1", "log.every=1", "val.every=2") == 0
    log = (tmp_path / "train.log").read_text()
    first, second = (line for line in log.splitlines() if "iteration 1/2" in line or "iteration 2/2" in line)
    for term in ("infonce=", "content=", "style=", "kl=", "accuracy="):
        assert term in first and term in second
    assert "class=" in first and "class=" not in second
    assert "iteration 2: validation accuracy=" in log
    scalars = _scalars(tmp_path / "tensorboard")
    for term in ("infonce", "content", "style", "kl", "accuracy"):
        assert scalars[f"loss/{term}"] == [1, 2]
    assert scalars["loss/class"] == [1] and scalars["val/accuracy"] == [2]

    prompter = irconstyle.load_model(tmp_path / "model_final.safetensors")
    assert isinstance(prompter, ConStyleV2Prompter) and not prompter.constyle.contrastive
    with torch.no_grad():
        assert prompter(torch.rand(2, 3, 40, 56)).shape == (2, len(DETECTION_CLASSES))  # the data's classes


def _states_differ(a: dict, b: dict) -> list[str]:
    assert a.keys() == b.keys()
    return [key for key in a if not torch.equal(a[key], b[key])]


def test_resumed_stage_1_is_bitwise_identical_to_an_uninterrupted_run(tmp_path, monkeypatch):
    """The end of the classification loss, dropout, the queue and validations at other iterations in the gap."""
    monkeypatch.chdir(REPO)
    plan = ["train.total_iters=6", "train.class_iters=3", "checkpoint.every=2",
            "data.train.options.classes=[none, denoise, dehaze]", "log.tensorboard=false"]
    straight = Trainer(load_config(STAGE1, [*plan, "val.every=4"]), output_dir=tmp_path / "a", progress=False).run()
    Trainer(load_config(STAGE1, [*plan, "train.total_iters=2"]), output_dir=tmp_path / "b", progress=False).run()
    resumed = Trainer(load_config(STAGE1, [*plan, "val.every=1"]), output_dir=tmp_path / "b", resume="auto",
                      progress=False).run()

    a, b = load_training_checkpoint(straight.last_checkpoint), load_training_checkpoint(resumed.last_checkpoint)
    assert a["iteration"] == b["iteration"] == 6
    assert a["model"]["constyle.encoder.classifier.3.weight"].shape[0] == 3  # as many classes as the data
    assert not torch.equal(a["model"]["constyle.queue_ptr"], torch.zeros(1, dtype=torch.long))
    assert _states_differ(a["model"], b["model"]) == []
    assert _states_differ(a["ema"], b["ema"]) == []
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for index, slots in a["optimizer"]["state"].items():
        assert _states_differ(slots, b["optimizer"]["state"][index]) == []


def test_stage_2_loads_stage_1_output_unchanged_and_keeps_it_frozen(tmp_path, monkeypatch):
    """The two smoke configs in order: stage 1 writes the prompter, stage 2 (all-in-one on mixed degradations)
    loads it through model.constyle.pretrained, frozen from the first iteration."""
    monkeypatch.chdir(REPO)
    stage1_config, stage2_config = load_config(STAGE1), load_config(STAGE2)
    assert stage2_config.model.constyle.pretrained == f"runs/{stage1_config.name}/model_final.safetensors"
    assert stage2_config.data.train.dataset == "mixed_degradations"
    assert _train(STAGE1, tmp_path / "stage1", "train.total_iters=2", "val.every=2", "checkpoint.every=2") == 0
    prompter_file = tmp_path / "stage1" / "model_final.safetensors"
    stage2 = tmp_path / "stage2"
    code = _train(STAGE2, stage2, f"model.constyle.pretrained={prompter_file}", "train.total_iters=2",
                  "val.every=2", "checkpoint.every=2", "log.every=1")
    assert code == 0

    prompter = {key: tensor for key, tensor in read_safetensors(prompter_file)[0].items()
                if key.startswith("constyle.encoder.") and ".classifier." not in key}
    state = load_training_checkpoint(stage2 / "checkpoints" / "iter_00000002.ckpt")
    assert state["frozen"] and len(state["optimizer"]["param_groups"]) == 1
    assert "iteration 1: ConStyle encoder frozen" in (stage2 / "train.log").read_text()
    trained = {key: state["model"][key] for key in state["model"] if key.startswith("constyle.encoder.")}
    assert trained.keys() == prompter.keys()
    assert _states_differ(prompter, trained) == []
    exported = read_safetensors(stage2 / "model_final.safetensors")[0]
    assert _states_differ(prompter, {key: exported[key] for key in prompter}) == []
    restorer = irconstyle.load_model(stage2 / "model_final.safetensors")
    with torch.no_grad():
        assert torch.isfinite(restorer(torch.rand(1, 3, 24, 20))).all()
