"""A local Hugging Face checkpoint (AutoModel + its fast tokenizer) as a backbone.

Same interface as components.model.encoder.Encoder, so the classifier, the
LightningModule and layer-wise LR decay treat both alike:

    backbone, tokenizer = HFBackbone.from_folder("checkpoints/all-MiniLM-L6-v2", pooling="mean")
    states, pooled = backbone(input_ids, attention_mask)   # [B, T, H], [B, H]

Only local folders are read (HF stays offline); `transformers` is needed
for this backbone only. The fine-tuned folder stores the HF config dict, so
`from_config_dict` rebuilds the architecture without the original folder.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from components.core.errors import DataError, first_line


class HFBackbone(nn.Module):
    """(input_ids [B, T], attention_mask [B, T] bool) -> (states [B, T, H], pooled [B, H])."""

    def __init__(self, model: nn.Module, pooling: str = "mean"):
        super().__init__()
        self.model = model
        self.pooling = pooling

    @classmethod
    def from_folder(cls, folder: str | Path, pooling: str = "mean"):
        """(backbone, tokenizers.Tokenizer) from a save_pretrained folder."""
        from transformers import AutoModel, AutoTokenizer

        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise DataError(f"{folder}: not a Hugging Face checkpoint folder (config.json not found)")
        try:
            model = AutoModel.from_pretrained(str(folder), local_files_only=True)
            tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError, KeyError) as e:
            raise DataError(f"{folder}: cannot load Hugging Face model/tokenizer ({first_line(e)})") from None
        backend = getattr(tok, "backend_tokenizer", None)
        if backend is None:
            raise DataError(f"{folder}: tokenizer has no fast (tokenizers) version; save it with "
                            "a tokenizer.json")
        if tok.pad_token_id is not None and getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = tok.pad_token_id
        return cls(model.float(), pooling), backend

    @classmethod
    def from_config_dict(cls, config: dict, pooling: str = "mean") -> "HFBackbone":
        """Rebuild the architecture (random weights) from `model.config.to_dict()`."""
        from transformers import AutoConfig, AutoModel

        config = dict(config)
        model_type = config.pop("model_type")
        return cls(AutoModel.from_config(AutoConfig.for_model(model_type, **config)), pooling)

    def config_dict(self) -> dict:
        return self.model.config.to_dict()

    @property
    def pad_id(self) -> int:
        pad = getattr(self.model.config, "pad_token_id", None)
        return int(pad) if pad is not None else 0

    @property
    def max_positions(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 512))

    @property
    def output_size(self) -> int:
        return int(self.model.config.hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        from components.model.encoder import pool

        mask = attention_mask.bool()
        out = self.model(input_ids=input_ids, attention_mask=mask.long())
        states = out.last_hidden_state  # [B, T, H]
        return states, pool(states, mask, self.pooling)  # [B, H]

    def layer_groups(self) -> list[nn.Module]:
        """[embeddings, layer 0, ..., layer L-1], bottom to top.

        The transformer layers are the longest ModuleList (BERT's encoder.layer,
        DistilBERT's transformer.layer, ...). Parameters outside the groups
        (pooler, final norms) are treated as top-layer parameters by the trainer.
        """
        lists = [m for m in self.model.modules() if isinstance(m, nn.ModuleList)]
        if not lists:
            raise DataError(f"{type(self.model).__name__}: no layer list found for layer-wise options")
        layers = max(lists, key=len)
        emb = self.model.get_input_embeddings()
        embeddings = getattr(self.model, "embeddings", emb)
        return [embeddings, *layers]
