"""Exponential moving average of a model's weights, the copy that is validated, exported and tested.

Parameters follow ``θ_ema ← decay·θ_ema + (1 − decay)·θ`` after every optimiser step. By default the
buffers (BatchNorm running statistics, the ConStyle queue and its pointer) are copied from the live model at
each update, so the EMA model's ConStyle heads normalise with real statistics.

``include_buffers=False`` is the published behaviour: only parameters are averaged and
the buffers keep their initial values, so the EMA model's projection-head BatchNorms use identity statistics
(mean 0, variance 1). Choose it only to reproduce the authors' numbers.

Copied statistics were gathered by the live weights, not the averaged ones; where they are tiny (ConStyle's
heads see nearly constant pooled features, so their BatchNorm works in the eps-dominated regime) the mismatch
is amplified into wild latents at inference. :meth:`ModelEMA.recalibrated` recomputes them for the EMA weights.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.swa_utils import update_bn


class ModelEMA:
    """An EMA copy of ``model`` (in eval mode, without gradients); ``update(model, iteration)`` after each step.

    With ``warmup`` the decay at iteration ``t`` is ``min(decay, (1 + t) / (10 + t))`` (as timm's EMA).
    """

    def __init__(self, model: nn.Module, *, decay: float, include_buffers: bool = True, warmup: bool = False) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.include_buffers = include_buffers
        self.warmup = warmup
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, iteration: int) -> None:
        decay = min(self.decay, (1 + iteration) / (10 + iteration)) if self.warmup else self.decay
        ema_params = list(self.module.parameters())
        live_params = [p.detach() for p in model.parameters()]
        # As a lerp, θ_ema + (1 − decay)·(θ − θ_ema): a parameter that does not change (a frozen ConStyle
        # prompter) stays bit-identical in the EMA copy, where decay·θ + (1 − decay)·θ would round.
        torch._foreach_lerp_(ema_params, live_params, 1.0 - decay)
        if self.include_buffers:
            for ema_buffer, live_buffer in zip(self.module.buffers(), model.buffers(), strict=True):
                ema_buffer.copy_(live_buffer)

    def recalibrated(self, batches: Iterable[torch.Tensor]) -> nn.Module:
        """A copy of the EMA model whose BatchNorm statistics are recomputed for its own weights.

        Runs the copy in train mode over ``batches`` of degraded inputs (a cumulative average, as for SWA);
        the EMA state itself is untouched, and so are the random generators (a model with dropout, such as
        ConStyle v2's prompter, draws from them in train mode), so training continues exactly. Models without
        BatchNorm come back unchanged.
        """
        module = copy.deepcopy(self.module)
        has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())
        if has_batchnorm:
            device = next(module.parameters()).device
            with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                update_bn(batches, module)
        return module.eval()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state, strict=True)
