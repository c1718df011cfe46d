"""The finding behind issue 14's clue: the learned alpha's pace is set by Adam and the schedule.

While L_CE - L_CRF keeps its sign, AdamW's step on theta is about the scheduled learning rate
whatever the gap's size, so alpha's trajectory does not depend on how much better one term is.
"""

import math

import pytest

from benchmarks.alpha_dynamics import replay, schedule_sum


def _gaps(steps: int, first: float) -> list[float]:
    return [first * math.exp(-3 * t / steps) for t in range(steps)]  # positive, shrinking as losses fall


def test_learned_alpha_trajectory_does_not_depend_on_the_size_of_the_loss_gap():
    steps = 510
    reference = replay(_gaps(steps, 0.05), alpha_lr=1e-3, warmup_ratio=0.1, total_steps=steps)
    for scale in (0.01, 100.0):
        scaled = replay(_gaps(steps, 0.05 * scale), alpha_lr=1e-3, warmup_ratio=0.1, total_steps=steps)
        assert max(abs(a - b) for a, b in zip(reference, scaled)) < 1e-3
    assert reference[-1] < 0.5  # CE larger: alpha falls toward the CRF term


def test_learned_alpha_cannot_leave_the_range_the_schedule_allows():
    steps = 510
    bound = 1e-3 * schedule_sum(steps, 0.1)
    assert bound == pytest.approx(0.5 * steps * 1e-3, rel=0.02)  # warm-up 0.05, decay 0.45
    final = replay([1.0] * steps, alpha_lr=1e-3, warmup_ratio=0.1, total_steps=steps)[-1]
    assert 1 / (1 + math.exp(bound)) - 1e-6 <= final < 0.5
    assert final == pytest.approx(1 / (1 + math.exp(bound)), abs=0.01)  # a constant sign uses it all
