"""A saved model's backbone as JSON, and back: the "backbone" entry of a model folder's config.json.

{"kind": "encoderflow", "encoder": EncoderConfig fields} for our Encoder (model/encoder.py), or
{"kind": "hf", "config": HF config dict, "pooling"} for a Hugging Face backbone
(model/hf_backbone.py). Both the classifier and its bi-encoder (model/classifier.py,
model/biencoder.py) write and read their backbone through these two functions.
"""

from __future__ import annotations

from torch import nn


def backbone_spec(backbone: nn.Module) -> dict:
    """JSON description that `build_backbone` turns back into the same architecture."""
    from components.model.hf_backbone import HFBackbone

    if isinstance(backbone, HFBackbone):
        return {"kind": "hf", "config": backbone.config_dict(), "pooling": backbone.pooling}
    return {"kind": "encoderflow", "encoder": backbone.cfg.to_dict()}


def build_backbone(spec: dict) -> nn.Module:
    """The backbone (random weights) that `spec` describes; the folder's weights load into it."""
    if spec.get("kind") == "hf":
        from components.model.hf_backbone import HFBackbone

        return HFBackbone.from_config_dict(spec["config"], spec.get("pooling", "mean"))
    from components.model.encoder import EncoderConfig, build_encoder

    return build_encoder(EncoderConfig(**spec["encoder"]))
