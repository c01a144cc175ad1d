"""The EMA model's BatchNorm statistics are recomputed for its own weights before validation and export."""

import copy

import torch
from torch import nn

from irconstyle.training.ema import ModelEMA


class WithBatchNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.norm = nn.BatchNorm1d(4)

    def forward(self, x):
        return self.norm(self.linear(x))


def test_recalibrated_copy_has_the_statistics_of_the_ema_weights_and_leaves_the_ema_alone():
    torch.manual_seed(0)
    live = WithBatchNorm()
    ema = ModelEMA(live, decay=0.5)
    with torch.no_grad():
        live.linear.weight.mul_(3.0)  # the live weights move on; the EMA lags behind
    live.train()
    batches = [torch.randn(16, 4) for _ in range(4)]
    for batch in batches:
        live(batch)
    ema.update(live, 1)  # copies the live model's running statistics: gathered by other weights
    before = copy.deepcopy(ema.module.state_dict())

    calibrated = ema.recalibrated(batches)

    features = torch.stack([ema.module.linear(b) for b in batches]).detach()  # batches × 16 × 4
    # A cumulative average over batches of each batch's mean and (unbiased) variance, as BatchNorm records them.
    torch.testing.assert_close(calibrated.norm.running_mean, features.mean(1).mean(0))
    torch.testing.assert_close(calibrated.norm.running_var, features.var(1).mean(0))
    assert not calibrated.training
    for key, value in ema.module.state_dict().items():
        assert torch.equal(value, before[key])


def test_models_without_batchnorm_come_back_unchanged():
    model = nn.Linear(3, 3)
    ema = ModelEMA(model, decay=0.9)
    copy_ = ema.recalibrated([torch.randn(2, 3)])
    assert torch.equal(copy_.weight, ema.module.weight)
