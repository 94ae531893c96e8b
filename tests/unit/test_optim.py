"""optim.lr_lambda against transformers' warmup schedules: why the hand-written one stays.

transformers' get_linear_schedule_with_warmup / get_cosine_schedule_with_warmup start the
warmup at 0 (the first optimizer step does nothing) and run one step behind ours during the
warmup; from the end of the warmup on they are the same schedule. Training numbers depend on
every step's lr, so switching would change them.
"""

from __future__ import annotations

import pytest
import torch
from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

from components.model.optim import lr_lambda

MAKERS = {"linear": get_linear_schedule_with_warmup, "cosine": get_cosine_schedule_with_warmup}


def _transformers(schedule: str, total: int, warmup: int) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    f = MAKERS[schedule](opt, warmup, total).lr_lambdas[0]
    return [f(s) for s in range(total + 1)]


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("total,fraction", [(10, 0.2), (37, 0.05), (636, 0.1), (1000, 0.06), (8, 0.0)])
def test_transformers_schedules_lag_ours_by_one_step_in_warmup_then_agree(schedule, total, fraction):
    warmup = round(fraction * total)  # ours rounds the warmup the same way (round half to even)
    ours = [lr_lambda(total, fraction, schedule)(s) for s in range(total + 1)]
    theirs = _transformers(schedule, total, warmup)
    assert ours[warmup:] == pytest.approx(theirs[warmup:], abs=1e-12)  # the same after the warmup
    if warmup:
        assert theirs[0] == 0.0 and ours[0] == pytest.approx(1 / warmup)  # their first step has lr 0
        # during the warmup theirs is ours one step later: 1/warmup of the peak lower at every step
        assert theirs[1:warmup + 1] == pytest.approx(ours[:warmup], abs=1e-12)
        assert max(a - b for a, b in zip(ours[:warmup], theirs[:warmup])) == pytest.approx(1 / warmup)
