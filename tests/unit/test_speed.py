"""evaluate's speed measurement (components/evaluation/speed.py): interleaved rounds after a
warm-up. Its reports/speed.json in the evaluate stage: tests/integration/test_evaluate_teacher.py."""

from __future__ import annotations

import doctest

import pytest

from components.evaluation import speed


def test_doctests():
    assert doctest.testmod(speed).failed == 0


def test_rounds_alternate_and_warm_up_first():
    calls = []
    fns = {name: (lambda t, b, name=name: calls.append((name, len(t), b))) for name in ("a", "b")}
    out = speed.throughput(fns, ["x"] * 300, batch_size=8, rounds=3)
    assert [c[0] for c in calls] == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then A B, B A, A B
    assert calls[0][1] == speed.WARMUP_TEXTS and all(n == 300 for _, n, _ in calls[2:])
    assert all(b == 8 for *_, b in calls) and set(out) == {"a", "b"}
    with pytest.raises(ValueError, match="no texts"):
        speed.throughput(fns, [])
