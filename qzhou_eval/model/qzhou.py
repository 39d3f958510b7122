"""QZhouModel: Qwen2 with bidirectional attention, built natively.

The QZhou-Embedding checkpoint declares `model_type: qwen2`, so a plain `AutoModel` load silently
returns the stock *causal* Qwen2Model with the same weights. This class is the bidirectional model
the checkpoint was trained as, without running the repository's `modeling_qzhou.py`.

Why the mask is always 4-D: on transformers 4.51 the SDPA path drops the mask for unpadded batches
and then decides causality from the query length alone, ignoring `module.is_causal`. Handing the
layers a ready key-padding mask (never `None`) makes every batch bidirectional under SDPA and eager;
flash-attention reads `module.is_causal`, which is switched off here too.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Qwen2Config, Qwen2Model


def key_padding_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, L) 1/0 mask -> additive (B, 1, 1, L) mask: 0 for real keys, dtype-min for padding."""
    inverted = 1.0 - attention_mask[:, None, None, :].to(dtype)
    return inverted * torch.finfo(dtype).min


class QZhouModel(Qwen2Model):
    """Qwen2Model whose every token attends to every real token of its sequence."""

    config_class = Qwen2Config

    def __init__(self, config: Qwen2Config):
        config.is_causal = False
        config.use_cache = False
        super().__init__(config)
        for layer in self.layers:
            layer.self_attn.is_causal = False

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ):
        if input_ids is None:
            raise ValueError("QZhouModel.forward needs input_ids")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if attention_mask.dim() == 2 and self.config._attn_implementation != "flash_attention_2":
            attention_mask = key_padding_mask(attention_mask, self.embed_tokens.weight.dtype)
        kwargs["use_cache"] = False
        kwargs.pop("past_key_values", None)
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
