"""Tiny checkpoints built offline in seconds, shaped like the real ones (FACTS §8)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CORPUS = [
    "A girl is styling her hair.",
    "A group of men play soccer on the beach.",
    "A man is playing a flute.",
    "The cat sat on the mat while the dog slept.",
    "Stocks fell sharply after the announcement.",
    "How do I reset my password on Ubuntu?",
    "Retrieve semantically similar text",
    "Instruct: Query:",
    "Given a claim, find documents that refute the claim",
    "Classify the sentiment of a given tweet",
    "今天天气很好，我们去公园散步。",
    "这个手机的电池续航怎么样？",
    "新冠病毒的传播途径有哪些？",
    "Null",
    "the quick brown fox jumps over the lazy dog 0123456789",
]


def build_bpe_tokenizer(vocab_size: int = 600, padding_side: str = "left"):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS * 20, trainer)
    return Qwen2TokenizerFast(
        tokenizer_object=tok,
        pad_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token=None,
        padding_side=padding_side,
    )


def build_qwen2(path: Path, architecture: str = "QZhouModel", seed: int = 0, padding_side: str = "left") -> Path:
    """A 2-layer Qwen2 with the QZhou checkpoint's config keys (or a stock Qwen2Model's).

    `padding_side` is what the saved tokenizer declares (`--padding_side auto` must override it to left)."""
    from transformers import Qwen2Config, Qwen2Model

    tokenizer = build_bpe_tokenizer(padding_side=padding_side)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        use_sliding_window=False,
        sliding_window=131072,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2Model(config).to(torch.bfloat16)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    cfg = json.loads((path / "config.json").read_text())
    cfg["architectures"] = [architecture]
    if architecture == "QZhouModel":
        cfg["auto_map"] = {"AutoModel": "modeling_qzhou.QZhouModel"}
    cfg["use_cache"] = True
    (path / "config.json").write_text(json.dumps(cfg, indent=2))
    return path


def build_qwen3(path: Path, seed: int = 1) -> Path:
    """A 2-layer Qwen3 whose tokenizer appends <|endoftext|> itself, as the released Qwen3-Embedding's does."""
    from tokenizers import processors
    from transformers import Qwen2TokenizerFast, Qwen3Config, Qwen3Model

    base = build_bpe_tokenizer()
    raw = base.backend_tokenizer
    eos = base.eos_token_id
    raw.post_processor = processors.TemplateProcessing(
        single="$A <|endoftext|>", pair="$A <|endoftext|> $B:1 <|endoftext|>:1", special_tokens=[("<|endoftext|>", eos)]
    )
    tokenizer = Qwen2TokenizerFast(
        tokenizer_object=raw, pad_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token=None, padding_side="left"
    )
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        pad_token_id=eos,
        eos_token_id=eos,
    )
    torch.manual_seed(seed)
    model = Qwen3Model(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    cfg = json.loads((path / "config.json").read_text())
    cfg["architectures"] = ["Qwen3ForCausalLM"]
    (path / "config.json").write_text(json.dumps(cfg, indent=2))
    return path


def build_bert(path: Path, seed: int = 2, padding_side: str = "right") -> Path:
    """A 2-layer BERT with a word-level WordPiece vocabulary of the corpus words, saved `padding_side`-padded."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = sorted(
        {w.strip(".,?!").lower() for text in CORPUS for w in text.split()} | set("abcdefghijklmnopqrstuvwxyz")
    )
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "?", ":", "!", *[w for w in words if w]]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True, padding_side=padding_side)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path
