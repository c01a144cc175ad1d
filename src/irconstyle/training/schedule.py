"""Learning-rate schedule of the published recipe: cyclic cosine annealing with restarts.

The authors' ``CosineAnnealingRestartCyclicLR`` splits training into periods; in period ``i`` the rate falls
along a half cosine from ``restart_weights[i]·base_lr`` towards ``eta_mins[i]``. Their recipe uses periods
``[243312, 460320]`` with ``eta_mins [3e-4, 1e-6]``, i.e. a constant 3e-4 for the first period and a cosine
to 1e-6 over the second. As in their loop, the scheduler is stepped after every optimiser step, so iteration
``t`` (1-based) trains with ``lr_at(t − 1)``.

The optional linear warm-up scales the scheduled rate by ``t / warmup_iters`` for ``t < warmup_iters``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


def cyclic_cosine_lr(
    step: int,
    *,
    base_lr: float,
    periods: Sequence[int],
    restart_weights: Sequence[float],
    eta_mins: Sequence[float],
) -> float:
    """The rate after ``step`` scheduler steps; past the last period it stays at the last ``eta_min``."""
    boundaries = [sum(periods[: i + 1]) for i in range(len(periods))]
    if step >= boundaries[-1]:
        return float(eta_mins[-1])
    index = bisect.bisect_left(boundaries, step)  # the first period whose end is >= step
    start = boundaries[index - 1] if index else 0
    progress = (step - start) / periods[index]
    eta_min = eta_mins[index]
    return eta_min + restart_weights[index] * 0.5 * (base_lr - eta_min) * (1.0 + math.cos(math.pi * progress))


def scheduled_lr(
    step: int,
    *,
    base_lr: float,
    periods: Sequence[int],
    restart_weights: Sequence[float],
    eta_mins: Sequence[float],
    warmup_iters: int = 0,
) -> float:
    """The rate used by iteration ``step + 1``: the cyclic cosine times the warm-up factor."""
    lr = cyclic_cosine_lr(step, base_lr=base_lr, periods=periods, restart_weights=restart_weights, eta_mins=eta_mins)
    iteration = step + 1
    if iteration < warmup_iters:
        lr *= iteration / warmup_iters
    return lr


class CosineAnnealingRestartCyclicLR(LRScheduler):
    """Cyclic cosine annealing with restarts and an optional linear warm-up (see the module docstring).

    The rate is a closed-form function of the step count, so the state to save is only the step count.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        periods: Sequence[int],
        eta_mins: Sequence[float],
        restart_weights: Sequence[float] | None = None,
        warmup_iters: int = 0,
        last_epoch: int = -1,
    ) -> None:
        restart_weights = [1.0] * len(periods) if restart_weights is None else list(restart_weights)
        if not periods or any(p <= 0 for p in periods):
            raise ValueError(f"periods must be a non-empty list of positive iteration counts, got {list(periods)}")
        if not len(periods) == len(eta_mins) == len(restart_weights):
            raise ValueError(
                "periods, eta_mins and restart_weights need one entry per period, got "
                f"{len(periods)}, {len(eta_mins)} and {len(restart_weights)}"
            )
        if warmup_iters < 0:
            raise ValueError(f"warmup_iters must be >= 0, got {warmup_iters}")
        self.periods = list(periods)
        self.eta_mins = [float(v) for v in eta_mins]
        self.restart_weights = [float(v) for v in restart_weights]
        self.warmup_iters = warmup_iters
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step: int, base_lr: float) -> float:
        """The rate used by iteration ``step + 1`` for a group whose initial rate is ``base_lr``."""
        return scheduled_lr(
            step,
            base_lr=base_lr,
            periods=self.periods,
            restart_weights=self.restart_weights,
            eta_mins=self.eta_mins,
            warmup_iters=self.warmup_iters,
        )

    def get_lr(self) -> list[float]:
        return [self.lr_at(self.last_epoch, float(base)) for base in self.base_lrs]

    def state_dict(self) -> dict:
        """The progress only: the schedule's shape comes from the config, so a resumed run can re-plan its
        future (the trainer checks that the rates already used are unchanged)."""
        return {k: v for k, v in super().state_dict().items() if k not in _SHAPE}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict({k: v for k, v in state_dict.items() if k not in _SHAPE})


_SHAPE = ("periods", "eta_mins", "restart_weights", "warmup_iters")
