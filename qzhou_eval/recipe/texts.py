"""The exact string a model is given for a text: the one place that builds it.

A preset decides what an empty text becomes ("Null" in QZhou's reference scripts; kept empty elsewhere), a
suffix after every text (gte-Qwen2 in mteb: "<|endoftext|>"), and, for sentence-transformers models, the
Transformer module's own step before its tokenizer (strip, then lower-case if configured). The prefix (the
instruction) goes in front. The embedder tokenizes exactly this string and the embedding cache keys vectors
by it, so both read it from here.
"""

from __future__ import annotations

from dataclasses import dataclass

EMPTY_REPLACEMENT = "Null"


@dataclass(frozen=True)
class TextRule:
    empty_text: str | None = EMPTY_REPLACEMENT  # None keeps an empty text empty
    suffix: str = ""
    strip: bool = False  # sentence-transformers' Transformer module strips every text
    lower_case: bool = False  # ... and lower-cases it when its config says do_lower_case

    def model_inputs(self, texts: list[str], prefix: str = "", strip_texts: bool = False) -> tuple[list[str], int]:
        """The strings the tokenizer gets, and how many empty texts were replaced. `strip_texts`: each text stripped
        before the rest (retrieval documents under a recipe that stripped them: mteb gives an untitled one as
        " text", the e5 scripts built '{title} {text}'.strip())."""
        out, empty = [], 0
        for text in texts:
            if strip_texts:
                text = text.strip()
            if text == "" and self.empty_text is not None:
                text = self.empty_text
                empty += 1
            full = prefix + text + self.suffix
            if self.strip:
                full = full.strip()
            if self.lower_case:
                full = full.lower()
            out.append(full)
        return out, empty

    def prompt_text(self, prefix: str) -> str:
        """The prompt alone as the module's text step leaves it (for counting its tokens)."""
        text = prefix.strip() if self.strip else prefix
        return text.lower() if self.lower_case else text
