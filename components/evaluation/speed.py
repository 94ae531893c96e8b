"""Inference throughput of several models, measured alike in one process.

Every model gets the same texts, the same batch size and torch's current thread
count; each is warmed up once, then timed in `rounds` rounds that alternate the
order (A B, B A, A B, ...) so CPU noise from other processes, frequency
scaling or the allocator hits every model alike. A model's texts/s is the number
of texts over its median round time.

These figures vary from run to run, so evaluate writes them to reports/speed.json,
never to the byte-reproducible reports/metrics.json.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

ROUNDS = 3
BATCH_SIZE = 64  # the registered pyfunc's default batch_size
MAX_TEXTS = 2000  # the first texts of the test split at most (bounds evaluate's time)
WARMUP_TEXTS = 128


def throughput(models: dict[str, Callable[[list[str], int], object]], texts: list[str],
               batch_size: int = BATCH_SIZE, rounds: int = ROUNDS) -> dict[str, float]:
    """name -> texts/s for models given as fn(texts, batch_size) (e.g. predict_proba).

    >>> fast = lambda t, b: time.sleep(0.001)
    >>> slow = lambda t, b: time.sleep(0.03)
    >>> out = throughput({"fast": fast, "slow": slow}, ["x"] * 10, rounds=2)
    >>> list(out), out["fast"] > out["slow"] > 0
    (['fast', 'slow'], True)
    """
    if not texts:
        raise ValueError("throughput: no texts to time")
    if rounds < 1:
        raise ValueError(f"throughput: rounds must be at least 1, got {rounds}")
    names = list(models)
    for name in names:  # warm-up: lazy init, allocator, kernel selection
        models[name](texts[:WARMUP_TEXTS], batch_size)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            models[name](texts, batch_size)
            seconds[name].append(time.perf_counter() - t0)
    return {name: len(texts) / max(statistics.median(seconds[name]), 1e-9) for name in names}


def report(student_fn, teacher_fn, texts: list[str], batch_size: int = BATCH_SIZE,
           rounds: int = ROUNDS) -> dict[str, float | int | None]:
    """reports/speed.json: student (and teacher) texts/s, their ratio, and the conditions.

    `teacher_fn` None (teacher disabled): the student alone, speed.ratio null.
    speed.ratio = student texts/s / teacher texts/s (how many times faster the student is).
    """
    import torch

    texts = list(texts[:MAX_TEXTS])
    models = {"student": student_fn}
    if teacher_fn is not None:
        models["teacher"] = teacher_fn
    tps = throughput(models, texts, batch_size, rounds)
    out: dict[str, float | int | None] = {
        "speed.batch_size": batch_size, "speed.n_texts": len(texts), "speed.rounds": rounds,
        "speed.threads": torch.get_num_threads(),
        "speed.student_texts_per_s": round(tps["student"], 1), "speed.ratio": None}
    if "teacher" in tps:
        out["speed.teacher_texts_per_s"] = round(tps["teacher"], 1)
        out["speed.ratio"] = round(tps["student"] / tps["teacher"], 3)
    return dict(sorted(out.items()))
