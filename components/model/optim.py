"""AdamW parameter groups and the LR schedule, shared by pretraining and fine-tuning.

Weight-decay rule (both stages): matrices and conv kernels decay; biases, norm
scales/shifts and embedding tables (token and learned position) never do, as in
BERT / GPT practice. Decay on an embedding row only ever pulls it toward 0
whenever that token happens to be in a batch, which punishes rare tokens.
"""

from __future__ import annotations

import math

from torch import nn

NO_DECAY_MODULES = (nn.Embedding, nn.LayerNorm)


def lr_lambda(max_steps: int, warmup_fraction: float, schedule: str = "linear"):
    """Multiplier of the peak lr at optimizer step s: linear warmup, then linear/cosine to 0.

    The warmup lasts round(warmup_fraction * max_steps) steps.

    >>> f = lr_lambda(10, 0.2, "linear"); [round(f(s), 3) for s in (0, 1, 2, 6, 10)]
    [0.5, 1.0, 1.0, 0.5, 0.0]
    """
    # Ours, not transformers' get_{linear,cosine}_schedule_with_warmup: theirs is 0 at step 0 (a wasted
    # step) and 1/warmup of the peak lower at every warmup step; equal after it (tests/test_optim.py).
    warmup = round(warmup_fraction * max_steps)

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
        return 1.0 - progress if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return f


def _no_decay_ids(modules: list[nn.Module]) -> set[int]:
    ids = set()
    for module in modules:
        for m in module.modules():
            if isinstance(m, NO_DECAY_MODULES):
                ids.update(id(p) for p in m.parameters(recurse=False))
    return ids


def param_groups(modules: list[nn.Module], weight_decay: float, lr: float | None = None,
                 layers: list[nn.Module] = (), layer_decay: float = 1.0) -> list[dict]:
    """AdamW groups over the trainable parameters of `modules` (each once; frozen ones left out).

    Weight decay follows the module rule above (1-D params and Embedding /
    LayerNorm params get 0). Layer-wise lr decay: `layers` lists modules bottom
    to top; a parameter of layers[i] (of n) trains at lr * layer_decay ** (n - i),
    taking the lowest layer that holds it; parameters in no layer (a task head)
    train at lr. With `lr=None` the groups carry no "lr" (the optimizer's
    default applies).

    Groups are ordered by lr scale, decayed before non-decayed. Pretraining
    (no layers) therefore always gets [decay, no-decay], the layout its resumable
    checkpoints store optimizer state in.
    """
    no_decay = _no_decay_ids(modules)
    n = len(layers)
    scale: dict[int, float] = {}
    for i, layer in enumerate(layers):
        for p in layer.parameters():
            scale.setdefault(id(p), layer_decay ** (n - i))
    buckets: dict[tuple[float, bool], list] = {}
    seen: set[int] = set()
    for module in modules:
        for p in module.parameters():
            if id(p) in seen or not p.requires_grad:
                continue
            seen.add(id(p))
            decays = p.dim() >= 2 and id(p) not in no_decay
            buckets.setdefault((scale.get(id(p), 1.0), decays), []).append(p)
    groups = []
    for (s, decays), ps in sorted(buckets.items(), key=lambda kv: (kv[0][0], not kv[0][1])):
        group = {"params": ps, "weight_decay": weight_decay if decays else 0.0}
        if lr is not None:
            group["lr"] = lr * s
        groups.append(group)
    return groups
