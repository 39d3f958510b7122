"""Where a result came from: library versions, the harness's own code identity, git commit, device, time.

The code identity is a hash of the source files that shape an embedding or a score, with the package
version. The harness's own code changes embeddings as surely as a library upgrade does (a pooling fix, a
new tokenisation step), and a version string alone was left unchanged for 76 commits; so the fingerprint
of every result and the key of every cached vector hold the hash of the files themselves. Two identities:

- `embedding`: the model layer (text -> vector: tokenising, batching, the runners, pooling, the native
  QZhou model, workers), the recipe layer (what the model is given: presets, instructions, the text step, the
  tokenizer loader, sentence-transformers configs, the resolution step) and `config.py`: what a cached vector
  depends on.
- `score`: `embedding` plus the evaluate files between the vectors and mteb's numbers (the adapter, the
  offline data loader, the reference batch sizes, the plan, the runner, the per-example record capture) and the
  records' metrics: what a result depends on. Reports, flags, shards, sizes, downloads and docs change neither.

Files are read, never imported, so this module sits at the bottom of the package.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from . import __version__

PACKAGE = Path(__file__).resolve().parent
# Every library a score depends on: the model's numerics, data loading, and the metrics (logistic regression,
# k-means, ranking) computed by scikit-learn, scipy, numpy and pytrec-eval. The one list: manifests record all
# of them, fingerprints and cache keys the ones that matter to them.
TRACKED_PACKAGES = (
    "mteb",
    "transformers",
    "sentence-transformers",
    "torch",
    "datasets",
    "tokenizers",
    "accelerate",
    "numpy",
    "scipy",
    "scikit-learn",
    "pytrec-eval-terrier",
)
EMBEDDING_PACKAGES = ("torch", "transformers", "tokenizers", "sentence-transformers")
SCORE_PACKAGES = tuple(p for p in TRACKED_PACKAGES if p != "accelerate")
EMBEDDING_FILES = ("model/*.py", "recipe/*.py", "config.py")
CODE_FILES = {
    "embedding": EMBEDDING_FILES,
    "score": (
        *EMBEDDING_FILES,
        "evaluate/adapter.py",
        "evaluate/data.py",
        "evaluate/batch_sizes.py",
        "evaluate/capture.py",
        "evaluate/plan.py",
        "evaluate/runner.py",
        "store/records.py",
        "store/metrics.py",
    ),
}


@cache
def code_files(kind: str) -> tuple[Path, ...]:
    if kind not in CODE_FILES:
        raise ValueError(f"code identity kind must be one of {', '.join(CODE_FILES)}")
    return tuple(sorted({p for pattern in CODE_FILES[kind] for p in PACKAGE.glob(pattern)}))


@cache
def code_identity(kind: str) -> str:
    """`<version>+<sha256 of the files, 12 hex>` for `embedding` or `score`."""
    digest = hashlib.sha256()
    for path in code_files(kind):
        digest.update(f"{path.relative_to(PACKAGE).as_posix()}\0".encode())
        digest.update(path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"


@cache
def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def versions_of(names: tuple[str, ...]) -> dict[str, str | None]:
    """`version:<name>` entries for a fingerprint or a cache key."""
    versions = package_versions()
    return {f"version:{name}": versions.get(name) for name in names}


def git_hash() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


CODE_SETTING = "code"  # the settings key that holds a code identity: the one --allow_code_change may let differ


def fingerprint(settings: dict[str, Any], length: int = 16) -> str:
    """A short, stable hash of a settings dict (key order does not matter)."""
    text = json.dumps(settings, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]
