"""Rebuild data/benchmark_cells.json.gz: every mteb benchmark's task entries as data.

Per benchmark, in mteb's order (a task listed twice stays twice): [task, type, eval splits, hf_subsets]
of mteb's own benchmark task objects, plus mteb's map of old benchmark names. `summarize` reads this
instead of importing mteb (10+ s) when the installed mteb is the version recorded here; a test checks
the file against the installed mteb. Run: python data/make_benchmark_cells.py
"""

from __future__ import annotations

import gzip
import json
import sys
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from qzhou_eval.recipe.benchmarks import SNAPSHOT, listing_from_mteb, names_from_mteb  # noqa: E402


def main() -> None:
    names, previous = names_from_mteb()
    snap = {
        "mteb_version": metadata.version("mteb"),
        "derived": "data/make_benchmark_cells.py from mteb.get_benchmark(name).tasks: "
        "[metadata.name, metadata.type, eval_splits, hf_subsets] per entry",
        "previous_names": previous,
        "benchmarks": {name: listing_from_mteb(name) for name in names},
    }
    text = json.dumps(snap, ensure_ascii=False, separators=(",", ":"), sort_keys=False)
    SNAPSHOT.write_bytes(gzip.compress(text.encode(), mtime=0))
    print(f"{SNAPSHOT}: {len(names)} benchmarks, mteb {snap['mteb_version']}")


if __name__ == "__main__":
    main()
