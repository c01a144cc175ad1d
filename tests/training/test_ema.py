"""EMA of weights: the update rule, buffers carried by default, the published parameters-only switch."""

import pytest
import torch
from torch import nn

from irconstyle.training.ema import ModelEMA


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))


def test_update_is_decay_weighted_average_of_parameters():
    model = _model()
    ema = ModelEMA(model, decay=0.9)
    before = [p.detach().clone() for p in ema.module.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model, 1)
    for old, new, live in zip(before, ema.module.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * live)


def test_warmup_forgets_the_initial_weights_early():
    """min(decay, (1 + t) / (10 + t)): 2/11 at iteration 1, the configured decay once the ramp passes it."""
    model = _model()
    ema = ModelEMA(model, decay=0.9, warmup=True)
    start = [p.detach().clone() for p in ema.module.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model, 1)
    for old, new, live in zip(start, ema.module.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(new, 2 / 11 * old + 9 / 11 * live)
    after_ramp = [p.detach().clone() for p in ema.module.parameters()]
    ema.update(model, 1000)
    for old, new, live in zip(after_ramp, ema.module.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * live)


def test_buffers_are_carried_by_default_and_frozen_in_published_mode():
    model = _model()
    carried = ModelEMA(model, decay=0.999)
    published = ModelEMA(model, decay=0.999, include_buffers=False)
    model.train()
    model(torch.randn(8, 4) * 3 + 2)  # moves the BatchNorm running statistics
    carried.update(model, 1)
    published.update(model, 1)
    torch.testing.assert_close(carried.module[1].running_mean, model[1].running_mean)
    torch.testing.assert_close(published.module[1].running_mean, torch.zeros(4))
    torch.testing.assert_close(published.module[1].running_var, torch.ones(4))


def test_ema_copy_is_in_eval_mode_without_gradients():
    ema = ModelEMA(_model(), decay=0.5)
    assert not ema.module.training
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_state_dict_round_trip():
    model = _model()
    ema = ModelEMA(model, decay=0.5)
    with torch.no_grad():
        model[0].weight.fill_(3.0)
    ema.update(model, 1)
    other = ModelEMA(_model(), decay=0.5)
    other.load_state_dict(ema.state_dict())
    torch.testing.assert_close(other.module[0].weight, ema.module[0].weight)


def test_decay_out_of_range_is_rejected():
    with pytest.raises(ValueError, match="decay"):
        ModelEMA(_model(), decay=1.0)
