"""ConStyle v2's stage 2: a restorer trained with a pre-trained prompter frozen from the first iteration."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from training_setup import tiny_config

from irconstyle import load_model
from irconstyle.models.constyle import ConStyleV2Prompter
from irconstyle.training import ConfigError, Trainer, load_config

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "smoke_v2_stage2.yaml"


def _write_v2_prompter(path: Path) -> ConStyleV2Prompter:
    """A random stage-1 prompter saved as ConStyle v2 saves it: ``{"params", "params_ema"}`` in its key layout."""
    torch.manual_seed(5)
    prompter = ConStyleV2Prompter(contrastive=True, queue_size=8)
    with torch.no_grad():  # running statistics that differ from a fresh encoder's, so a missed load shows
        for module in prompter.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
    renames = [("constyle.encoder.", "encoder_q."), ("constyle.key_encoder.", "encoder_k."), ("constyle.", ""),
               (".head_z.", ".mlp1."), (".head_q.", ".mlp2.")]
    state = {}
    for key, tensor in prompter.state_dict().items():
        for old, new in renames:
            key = key.replace(old, new)
        state[key] = tensor
    decoy = {key: torch.zeros_like(tensor) for key, tensor in state.items()}
    torch.save({"params": decoy, "params_ema": state}, path)
    return prompter


def test_stage_2_smoke_config_trains_the_body_around_the_frozen_prompter(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the config's photo folders are relative to the repository root
    prompter = _write_v2_prompter(tmp_path / "stage1.pth")
    config = load_config(SMOKE, [
        f"model.constyle.pretrained={tmp_path / 'stage1.pth'}", "train.total_iters=2", "val.every=2",
        "checkpoint.every=2", "log.every=1",
    ])
    initial_body = {}
    build = Trainer._build_model

    def build_and_remember_body(self):
        model = build(self)
        initial_body.update({key: tensor.clone() for key, tensor in model.body.state_dict().items()})
        return model

    monkeypatch.setattr(Trainer, "_build_model", build_and_remember_body)
    trainer = Trainer(config, output_dir=tmp_path / "run", progress=False)
    result = trainer.run()
    assert result.status == "completed" and result.iteration == 2
    assert trainer.frozen and not trainer.model.constyle.training
    assert len(trainer.optimizer.param_groups) == 1  # the encoder was never optimised

    expected = prompter.constyle.encoder.state_dict()
    for key, tensor in trainer.model.constyle.encoder.state_dict().items():
        if key.startswith("classifier."):
            continue
        assert torch.equal(tensor, expected[key]), f"the frozen prompter changed: {key}"
    assert trainer.model.constyle.encoder.classifier is None
    body = trainer.model.body.state_dict()
    changed = [key for key, tensor in body.items() if not torch.equal(tensor, initial_body[key])]
    assert changed, "the restoration body did not train"

    restorer = load_model(result.final_weights)
    for key, tensor in restorer.constyle.encoder.state_dict().items():
        assert torch.equal(tensor, expected[key]), key
    image = torch.rand(1, 3, 24, 20)
    with torch.no_grad():
        assert torch.isfinite(restorer(image)).all()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model.constyle.freeze": True}, "model.constyle.freeze: needs model.constyle.pretrained"),
        (
            {"model.constyle.freeze": True, "model.constyle.pretrained": "p.pth", "train.constyle_iters": 3},
            "train.constyle_iters is 3; remove one of them",
        ),
    ],
)
def test_freeze_needs_a_prompter_and_no_other_freeze_point(overrides, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config("constyle_kbnet", **overrides)


def test_origin_models_have_no_prompter_to_load():
    with pytest.raises(ConfigError, match="model.constyle.pretrained: 'kbnet' is not a ConStyle restoration model"):
        tiny_config("kbnet", **{"model.constyle.pretrained": "p.pth"})


def test_a_bad_prompter_file_is_a_config_error(tmp_path):
    config = tiny_config("constyle_kbnet", **{"model.constyle.pretrained": str(tmp_path / "absent.pth")})
    with pytest.raises(ConfigError, match=r"model.constyle.pretrained: .*absent\.pth: no such checkpoint file"):
        Trainer(config, output_dir=tmp_path / "run", progress=False).run()
