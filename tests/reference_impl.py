"""An independent implementation of the reference embedder (FACTS §1), for comparison only.

It shares no code with qzhou_eval: a stock transformers Qwen2Model made bidirectional by handing it
an explicit 4-D all-visible mask, the tokenizer's own padding and truncation, and the reference's
"sum of the last `length` rows / length" pooling for left padding.
"""

from __future__ import annotations

import numpy as np
import torch


def reference_embed(path, texts, prefix="", max_length=1024, batch_size=32):
    from transformers import AutoTokenizer, Qwen2Model

    tok = AutoTokenizer.from_pretrained(str(path))
    tok.padding_side = "left"
    model = Qwen2Model.from_pretrained(str(path), torch_dtype=torch.float32, attn_implementation="eager").eval()
    texts = [prefix + (t if t != "" else "Null") for t in texts]
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        keep = enc["attention_mask"][:, None, None, :].float()
        mask4d = (1.0 - keep) * torch.finfo(torch.float32).min  # every query sees every real key
        with torch.no_grad():
            h = model(input_ids=enc["input_ids"], attention_mask=mask4d).last_hidden_state.float()
        for row, i in enumerate(idx):
            length = int(enc["attention_mask"][row].sum())
            v = h[row, -length:].sum(dim=0) / length
            out[i] = (v / v.norm()).numpy()
    return out


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
