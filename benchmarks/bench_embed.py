"""Embedding speed: our embedder vs a faithful re-implementation of the reference loop vs
sentence-transformers, same model, device and texts, interleaved in one run.

Texts: the bundled STSBenchmark sentences (both columns) for 80 %, and for 20 % passages joined from
3-12 of them, shuffled with a fixed seed. Each round times every method once, in turn; the fastest
round of each method counts (the least disturbed by other load on the machine). The embedding cache
(qzhou_eval/cache.py) is timed cold (nothing cached: encode and write every vector) and warm (every
vector read back). With --json the last stdout line is one JSON object.

    python benchmarks/bench_embed.py --model_name_or_path DIR --n_texts 2000 --dtype float32 --json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qzhou_eval.model.embedder import Embedder, EncodeStats  # noqa: E402
from qzhou_eval.model.weights import load_model  # noqa: E402
from qzhou_eval.recipe.checkpoint import resolve_checkpoint, resolve_max_length  # noqa: E402
from qzhou_eval.recipe.tokenizer import load_tokenizer  # noqa: E402
from qzhou_eval.store.cache import EmbeddingCache  # noqa: E402

STS_FILE = REPO / "data" / "hub" / "mteb" / "stsbenchmark-sts" / "test.jsonl"


def make_texts(n: int, seed: int = 0) -> list[str]:
    rows = [json.loads(line) for line in STS_FILE.read_text(encoding="utf-8").splitlines()]
    sentences = [r["sentence1"] for r in rows] + [r["sentence2"] for r in rows]
    rng = random.Random(seed)
    n_passages = n // 5
    short = [sentences[i % len(sentences)] for i in range(n - n_passages)]
    passages = [" ".join(rng.sample(sentences, rng.randint(3, 12))) for _ in range(n_passages)]
    texts = short + passages
    rng.shuffle(texts)
    return texts


class ReferenceLoop:
    """The reference scripts' encode loop: character-length sort, fixed batches, the tokenizer's own
    padding to the longest text of each batch, masked mean pooling, L2 normalisation."""

    def __init__(self, model, tokenizer, max_length: int, batch_size: int = 32) -> None:
        self.model, self.tok, self.max_length, self.batch_size = model, tokenizer, max_length, batch_size
        self.device = next(model.parameters()).device
        self.padding = (0, 0)

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> np.ndarray:
        order = np.argsort([-len(t) for t in texts])
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        pad = total = 0
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            enc = self.tok(
                [texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            ).to(self.device)
            h = self.model(**enc).last_hidden_state.float()
            m = enc["attention_mask"].unsqueeze(-1).float()
            emb = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)
            out[idx] = emb.cpu().numpy()
            total += enc["attention_mask"].numel()
            pad += int((enc["attention_mask"] == 0).sum())
        self.padding = (pad, total)
        return out


def timed(fn, texts):
    t0 = time.perf_counter()
    out = fn(texts)
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model_name_or_path", required=True)
    p.add_argument("--n_texts", type=int, default=2000)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--attn_implementation", default="sdpa")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    texts = make_texts(args.n_texts, args.seed)
    ckpt = resolve_checkpoint(args.model_name_or_path)
    tok = load_tokenizer(ckpt, "auto", False)
    max_length = resolve_max_length(1024, ckpt, tok)
    model = load_model(ckpt, args.dtype, args.attn_implementation, args.device, False)
    ours = Embedder(model, tok, max_length=max_length, batch_size=args.batch_size)  # the defaults users get
    ref = ReferenceLoop(model, tok, max_length, args.batch_size)

    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(
        str(ckpt.path), device=args.device, model_kwargs={"torch_dtype": getattr(torch, args.dtype)}
    )
    st.max_seq_length = max_length
    if st.tokenizer.pad_token is None:
        st.tokenizer.pad_token = st.tokenizer.eos_token
    warm_dir = Path(tempfile.mkdtemp(prefix="bench_cache_"))
    warm = EmbeddingCache(warm_dir, {"bench": "warm"})
    warm.encode(ours, "bench", texts, "", EncodeStats())  # filled once; every timed call reads it whole

    def cache_cold(t: list[str]) -> np.ndarray:
        """--cache on, nothing cached yet: every vector is encoded and written (a fresh folder per call)."""
        with tempfile.TemporaryDirectory(prefix="bench_cache_") as folder:
            return EmbeddingCache(folder, {"bench": "cold"}).encode(ours, "bench", t, "", EncodeStats())

    methods = {
        "ours": ours.encode,
        "ours_cache_cold": cache_cold,
        "ours_cache_warm": lambda t: EmbeddingCache(warm_dir, {"bench": "warm"}).encode(
            ours, "bench", t, "", EncodeStats()
        ),
        "reference": ref.encode,
        "st": lambda t: st.encode(
            t, batch_size=args.batch_size, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
        ),
    }
    for fn in methods.values():  # warm-up
        fn(texts[:64])
    times: dict[str, list[float]] = {k: [] for k in methods}
    outputs = {}
    for _ in range(args.rounds):
        for name, fn in methods.items():
            dt, outputs[name] = timed(fn, texts)
            times[name].append(dt)
    speed = {k: len(texts) / min(v) for k, v in times.items()}
    ours_pad, ours_total = ours.last_padding
    ref_pad, ref_total = ref.padding
    cos = (outputs["ours"] * outputs["reference"]).sum(1) / (
        np.linalg.norm(outputs["ours"], axis=1) * np.linalg.norm(outputs["reference"], axis=1)
    )
    report = {
        "model": str(ckpt.path.name),
        "n_texts": len(texts),
        "dtype": args.dtype,
        "device": args.device
        if args.device != "cpu"
        else f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)",
        "batch_size": args.batch_size,
        "max_length": max_length,
        "rounds": args.rounds,
        "ours_texts_per_s": round(speed["ours"], 1),
        "reference_texts_per_s": round(speed["reference"], 1),
        "st_texts_per_s": round(speed["st"], 1),
        "ratio_vs_reference": round(speed["ours"] / speed["reference"], 3),
        "ratio_vs_sentence_transformers": round(speed["ours"] / speed["st"], 3),
        "cache_cold_texts_per_s": round(speed["ours_cache_cold"], 1),
        "ratio_cache_cold_vs_off": round(speed["ours_cache_cold"] / speed["ours"], 3),
        "cache_warm_texts_per_s": round(speed["ours_cache_warm"], 1),
        "padding_fraction": round(ours_pad / ours_total, 4),
        "reference_padding_fraction": round(ref_pad / ref_total, 4),
        "min_cosine_vs_reference": float(np.round(cos.min(), 7)),
        "ours_tokens_per_s": round((ours_total - ours_pad) / min(times["ours"]), 1),
    }
    shutil.rmtree(warm_dir, ignore_errors=True)
    width = max(map(len, report))
    for k, v in report.items():
        print(f"{k:{width}s}  {v}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
