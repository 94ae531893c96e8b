"""Lightning precision for pretrain and finetune: "auto" picks bf16 where the hardware has it."""

from __future__ import annotations


def resolve_precision(precision: str, accelerator: str = "cpu") -> str:
    """"auto" -> "bf16-mixed" where the hardware has native bf16, else "32"; others pass through."""
    if precision != "auto":
        return precision
    import torch

    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32"
    cpu = torch.cpu
    native = getattr(cpu, "_is_avx512_bf16_supported", lambda: False)() or \
        getattr(cpu, "_is_amx_tile_supported", lambda: False)()
    return "bf16-mixed" if native else "32"
