"""Rebuild data/task_stats.json from ../shared/data/task_stats.json (mteb's descriptive statistics).

Keeps, per task and eval split, the distinct texts and the estimated characters of those distinct texts
(what an encoder that embeds each distinct text once reads), and for multi-subset tasks the number of
hf_subsets those totals cover in mteb 1.38.30, so a benchmark that keeps fewer subsets can scale them.
Run: python data/make_task_stats.py [SOURCE]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent.parent / "shared" / "data" / "task_stats.json"


def n_subsets(name: str) -> int | None:
    import mteb

    try:
        return len(mteb.get_task(name).hf_subsets)
    except Exception:  # noqa: BLE001 - a name mteb 1.38.30 does not know keeps the totals unscaled
        return None


def main(source: Path) -> None:
    raw = json.loads(source.read_text())
    tasks = {}
    for name, splits in sorted(raw["tasks"].items()):
        entry: dict = {"splits": {}}
        for split, s in sorted(splits.items()):
            if s.get("unique_texts") is None or s.get("unique_characters_estimate") is None:
                continue
            entry["splits"][split] = {"texts": s["unique_texts"], "chars": s["unique_characters_estimate"]}
            if s.get("num_samples") is not None:
                entry["splits"][split]["samples"] = s["num_samples"]
        subsets = n_subsets(name)
        if subsets and subsets > 1:
            entry["subsets"] = subsets
        if entry["splits"]:
            tasks[name] = entry
    out = {
        "source": raw["source"],
        "upstream_note": raw["note"],
        "derived": (
            "Built by data/make_task_stats.py from ../shared/data/task_stats.json. Per task and eval split: "
            "texts = unique_texts, chars = unique_characters_estimate, samples = num_samples (pairs, test "
            "examples, queries plus documents: mteb's own count, used to size the compare benchmark). subsets = how "
            "many hf_subsets the totals cover in mteb 1.38.30 (only when more than one)."
        ),
        "caveats": [
            "Statistics were computed by mteb 2.x on the same dataset revisions; 1.38.30 reads the same files.",
            "Eval splits only: classification tasks also embed a few labelled training samples per experiment, "
            "not counted here.",
            "Distinct texts are counted per text block (documents, queries, sentence1, sentence2, ...): a text "
            "that is both a query and a document counts twice.",
            "Multi-subset totals cover every subset; a benchmark keeping k of n subsets is estimated as k/n of "
            "the total (subsets differ in size, so this is rough).",
            "chars is an estimate (distinct texts x average length); tokens per character differ by language.",
        ],
        "tasks": tasks,
    }
    (HERE / "task_stats.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(tasks)} tasks written to {HERE / 'task_stats.json'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE)
