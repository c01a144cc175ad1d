"""The published cyclic cosine schedule and the warm-up."""

import math

import pytest
import torch

from irconstyle.training.schedule import CosineAnnealingRestartCyclicLR, cyclic_cosine_lr

PAPER = {"periods": [243312, 460320], "restart_weights": [1, 1], "eta_mins": [3e-4, 1e-6]}


def test_paper_schedule_is_constant_then_cosine_to_1e_6():
    assert cyclic_cosine_lr(0, base_lr=3e-4, **PAPER) == pytest.approx(3e-4)
    assert cyclic_cosine_lr(243312, base_lr=3e-4, **PAPER) == pytest.approx(3e-4)
    middle = 243312 + 460320 // 2
    assert cyclic_cosine_lr(middle, base_lr=3e-4, **PAPER) == pytest.approx((3e-4 + 1e-6) / 2)
    assert cyclic_cosine_lr(703632, base_lr=3e-4, **PAPER) == pytest.approx(1e-6)
    assert cyclic_cosine_lr(10**7, base_lr=3e-4, **PAPER) == pytest.approx(1e-6)


def test_restart_weights_scale_each_period():
    lr = cyclic_cosine_lr(10, base_lr=1.0, periods=[10, 10], restart_weights=[1.0, 0.5], eta_mins=[0.0, 0.0])
    assert lr == pytest.approx(0.0)
    lr = cyclic_cosine_lr(11, base_lr=1.0, periods=[10, 10], restart_weights=[1.0, 0.5], eta_mins=[0.0, 0.0])
    assert lr == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi / 10)))


def _run(scheduler, optimizer, steps):
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_scheduler_matches_the_formula_with_iteration_t_using_step_t_minus_1():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=2e-3)
    scheduler = CosineAnnealingRestartCyclicLR(optimizer, periods=[4, 6], eta_mins=[2e-3, 1e-5])
    expected = [cyclic_cosine_lr(t, base_lr=2e-3, periods=[4, 6], restart_weights=[1, 1], eta_mins=[2e-3, 1e-5])
                for t in range(12)]
    assert _run(scheduler, optimizer, 12) == pytest.approx(expected)


def test_warmup_ramps_linearly_then_follows_the_schedule():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=1.0)
    scheduler = CosineAnnealingRestartCyclicLR(optimizer, periods=[100], eta_mins=[1.0], warmup_iters=4)
    assert _run(scheduler, optimizer, 6) == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])


def test_state_dict_round_trip_continues_the_same_rates():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=1.0)
    scheduler = CosineAnnealingRestartCyclicLR(optimizer, periods=[5, 5], eta_mins=[1.0, 0.0])
    _run(scheduler, optimizer, 6)
    state = scheduler.state_dict()
    tail = _run(scheduler, optimizer, 3)

    other_optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    other = CosineAnnealingRestartCyclicLR(other_optimizer, periods=[5, 5], eta_mins=[1.0, 0.0])
    other.load_state_dict(state)
    other_optimizer.param_groups[0]["lr"] = other.get_last_lr()[0]
    assert _run(other, other_optimizer, 3) == tail


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"periods": [], "eta_mins": []}, "periods"),
        ({"periods": [5, 0], "eta_mins": [1, 1]}, "periods"),
        ({"periods": [5, 5], "eta_mins": [1]}, "one entry per period"),
        ({"periods": [5], "eta_mins": [1], "warmup_iters": -1}, "warmup_iters"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match=message):
        CosineAnnealingRestartCyclicLR(optimizer, **kwargs)
