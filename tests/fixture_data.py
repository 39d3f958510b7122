"""Tiny datasets in the hub layout (raw hub schema), one per mteb loader family.

Each writer puts files under `root/<dataset path of the task>/` exactly where `--data_dir root`
looks, so the tests exercise the same redirection users rely on.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = (
    "cat dog bird fish tree river mountain car train plane phone battery screen music song movie "
    "bank money loan card stock market price coffee tea bread rice soup doctor virus fever cough"
).split()


def sentence(rng: random.Random, topic: int, n: int = 6) -> str:
    pool = WORDS[topic * 5 : topic * 5 + 5] or WORDS
    return " ".join(rng.choice(pool) for _ in range(n)).capitalize() + "."


def jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def readme(path: Path, configs: list[tuple[str, dict[str, str]]]) -> None:
    """README.md YAML that declares configs and split names (so `dev.jsonl` is not read as validation)."""
    lines = ["---", "configs:"]
    for name, files in configs:
        lines += [f"- config_name: {name}", "  data_files:"]
        lines += [f"  - split: {split}\n    path: {file}" for split, file in files.items()]
    path.mkdir(parents=True, exist_ok=True)
    (path / "README.md").write_text("\n".join(lines + ["---", ""]), encoding="utf-8")


def sts(root: Path, hub: str, n: int = 40, split: str = "test", lang: str | None = None, seed: int = 0) -> None:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randrange(6), rng.randrange(6)
        row = {
            "sentence1": sentence(rng, a),
            "sentence2": sentence(rng, b),
            "score": 5.0 if a == b else rng.random() * 2,
        }
        if lang:
            row["lang"] = lang
        rows.append(row)
    jsonl(root / hub / f"{split}.jsonl", rows)


def classification(
    root: Path,
    hub: str,
    splits=("train", "test"),
    n: int = 48,
    seed: int = 0,
    lang: str | None = None,
    label_key: str = "label",
) -> None:
    rng = random.Random(seed)
    for split in splits:
        rows = []
        for i in range(n):
            label = i % 3
            row = {"text": sentence(rng, label), label_key: label}
            if lang:
                row["lang"] = lang
            rows.append(row)
        jsonl(root / hub / f"{split}.jsonl", rows)


def clustering_v2(root: Path, hub: str, n: int = 60, seed: int = 0) -> None:
    rng = random.Random(seed)
    labels = [str(i % 4) for i in range(n)]
    jsonl(root / hub / "test.jsonl", [{"sentences": [sentence(rng, int(lab)) for lab in labels], "labels": labels}])


def pair_classification(
    root: Path, hub: str, split: str = "test", n: int = 30, seed: int = 0, keys=("sent1", "sent2", "labels")
) -> None:
    rng = random.Random(seed)
    s1, s2, lab = [], [], []
    for i in range(n):
        a = rng.randrange(6)
        b = a if i % 2 == 0 else (a + 1) % 6
        s1.append(sentence(rng, a))
        s2.append(sentence(rng, b))
        lab.append(int(a == b))
    jsonl(root / hub / f"{split}.jsonl", [{keys[0]: s1, keys[1]: s2, keys[2]: lab}])


def reranking(root: Path, hub: str, split: str = "test", n: int = 8, seed: int = 0, readme_split: bool = False) -> None:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        t = i % 6
        rows.append(
            {
                "query": sentence(rng, t),
                "positive": [sentence(rng, t) for _ in range(2)],
                "negative": [sentence(rng, (t + k) % 6) for k in (1, 2, 3)],
            }
        )
    jsonl(root / hub / f"{split}.jsonl", rows)
    if readme_split:
        readme(root / hub, [("default", {split: f"{split}.jsonl"})])


def beir_retrieval(root: Path, hub: str, split: str = "test", n_queries: int = 6, seed: int = 0) -> None:
    """English BEIR layout: configs corpus / queries / default (qrels)."""
    rng = random.Random(seed)
    base = root / hub
    corpus = [
        {"_id": f"d{i}", "title": "" if i % 2 else f"Title {i}", "text": sentence(rng, i % 6, 10)} for i in range(24)
    ]
    queries = [{"_id": f"q{i}", "text": sentence(rng, i % 6, 4)} for i in range(n_queries)]
    qrels = [
        {"query-id": f"q{i}", "corpus-id": f"d{j}", "score": 1}
        for i in range(n_queries)
        for j in range(24)
        if j % 6 == i % 6
    ][: n_queries * 3]
    jsonl(base / "corpus.jsonl", corpus)
    jsonl(base / "queries.jsonl", queries)
    jsonl(base / "qrels" / f"{split}.jsonl", qrels)
    readme(
        base,
        [
            ("corpus", {"corpus": "corpus.jsonl"}),
            ("queries", {"queries": "queries.jsonl"}),
            ("default", {split: f"qrels/{split}.jsonl"}),
        ],
    )


def cmteb_retrieval(root: Path, hub: str, n_queries: int = 6, seed: int = 0) -> None:
    """C-MTEB layout: splits corpus / queries (id, text) plus a sibling `<hub>-qrels` with split dev."""
    rng = random.Random(seed)
    base = root / hub
    jsonl(base / "corpus.jsonl", [{"id": f"p{i}", "text": sentence(rng, i % 6, 10)} for i in range(24)])
    jsonl(base / "queries.jsonl", [{"id": f"q{i}", "text": sentence(rng, i % 6, 4)} for i in range(n_queries)])
    readme(base, [("default", {"corpus": "corpus.jsonl", "queries": "queries.jsonl"})])
    qrels = [
        {"qid": f"q{i}", "pid": f"p{j}", "score": 1} for i in range(n_queries) for j in range(24) if j % 6 == i % 6
    ]
    qbase = root / (hub + "-qrels")
    jsonl(qbase / "dev.jsonl", qrels)
    readme(qbase, [("default", {"dev": "dev.jsonl"})])


def multilingual_slow(
    root: Path, hub: str, subset: str = "en", splits=("train", "validation", "test"), seed: int = 0
) -> None:
    """One config per subset, declared in README YAML (MTOPDomain, AmazonCounterfactual)."""
    rng = random.Random(seed)
    base = root / hub
    files = {}
    for split in splits:
        rows = [{"text": sentence(rng, i % 3), "label": i % 3} for i in range(36)]
        jsonl(base / subset / f"{split}.jsonl", rows)
        files[split] = f"{subset}/{split}.jsonl"
    readme(base, [(subset, files)])


# --- the other loader families, for per-example records (issue 17) ---------------------------------------------


def noisy(rng: random.Random, topic: int, n: int = 6) -> str:
    """Half the words from the topic, half from anywhere: scores that are neither 0 nor 1."""
    pool = WORDS[topic * 5 : topic * 5 + 5] or WORDS
    return " ".join(rng.choice(pool) if rng.random() < 0.5 else rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def reranking_with_gap(root: Path, hub: str, split: str = "test", n: int = 10, seed: int = 0, readme_split=False):
    """Like `reranking`, but row 3 has no negatives: mteb's RerankingEvaluator drops it."""
    rng = random.Random(seed)
    rows = [
        {
            "query": noisy(rng, i % 6),
            "positive": [noisy(rng, i % 6) for _ in range(2)],
            "negative": [] if i == 3 else [noisy(rng, (i % 6 + k) % 6) for k in (1, 2, 3)],
        }
        for i in range(n)
    ]
    jsonl(root / hub / f"{split}.jsonl", rows)
    if readme_split:
        readme(root / hub, [("default", {split: f"{split}.jsonl"})])


def clustering_legacy(root: Path, hub: str, n_rows: int = 3, n: int = 30, seed: int = 0) -> None:
    """Legacy clustering (C-MTEB CLS, ThuNews): each row is one clustering problem."""
    rng = random.Random(seed)
    rows = []
    for r in range(n_rows):
        labels = [str(i % (3 + r)) for i in range(n)]
        rows.append({"sentences": [noisy(rng, int(lab)) for lab in labels], "labels": labels})
    jsonl(root / hub / "test.jsonl", rows)


def summarization(root: Path, hub: str, n: int = 8, seed: int = 0) -> None:
    """SummEval layout; row 2 has constant human relevance, so mteb skips that text."""
    rng = random.Random(seed)
    rows = [
        {
            "id": str(i),
            "text": noisy(rng, i % 6, 20),
            "human_summaries": [noisy(rng, i % 6, 6) for _ in range(3)],
            "machine_summaries": [noisy(rng, (i % 6 + k) % 6, 6) for k in range(5)],
            "relevance": [3.0] * 5 if i == 2 else [round(rng.uniform(1, 5), 3) for _ in range(5)],
        }
        for i in range(n)
    ]
    jsonl(root / hub / "test.jsonl", rows)


def multilabel(root: Path, hub: str, n_train: int = 60, n_test: int = 2050, seed: int = 0) -> None:
    """CEDR-like text + label lists; more than 2000 test rows, so mteb subsamples the test set."""
    rng = random.Random(seed)
    combos = [[0], [1], [2], [0, 1], [1, 2], []]
    for split, n in (("train", n_train), ("test", n_test)):
        rows = [{"text": noisy(rng, (combos[i % 6] or [5])[0]) + f" {i}", "label": combos[i % 6]} for i in range(n)]
        jsonl(root / hub / f"{split}.jsonl", rows)


def bitext(root: Path, hub: str, n: int = 40, seed: int = 0, cols=("da", "da_bornholm")) -> None:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a = noisy(rng, i % 6)
        b = " ".join(w if rng.random() < 0.4 else rng.choice(WORDS) for w in reversed(a.rstrip(".").split()))
        rows.append({cols[0]: a, cols[1]: b})
    jsonl(root / hub / "test.jsonl", rows)


def instruction_retrieval(root: Path, hub: str, split: str = "test", n_queries: int = 5, seed: int = 0) -> None:
    """FollowIR layout: corpus, queries with og / changed instructions, both qrels, top_ranked."""
    rng = random.Random(seed)
    base = root / hub
    corpus = [{"_id": f"d{i}", "title": f"T{i}", "text": noisy(rng, i % 6, 10)} for i in range(30)]
    queries = [
        {
            "_id": f"q{i}",
            "text": noisy(rng, i % 6, 4),
            "instruction_og": "Relevant documents mention " + noisy(rng, i % 6, 3),
            "instruction_changed": "Relevant documents must also mention " + noisy(rng, (i + 1) % 6, 3),
        }
        for i in range(n_queries)
    ]
    og, changed, top = [], [], []
    for i in range(n_queries):
        top += [{"qid": f"q{i}", "pid": f"d{j}"} for j in range(30) if j % 6 in (i % 6, (i + 1) % 6)]
        for k, j in enumerate(j for j in range(30) if j % 6 == i % 6):
            og.append({"query-id": f"q{i}", "corpus-id": f"d{j}", "score": 1})
            changed.append({"query-id": f"q{i}", "corpus-id": f"d{j}", "score": 1 if k % 2 else 0})
    jsonl(base / "corpus.jsonl", corpus)
    jsonl(base / "queries.jsonl", queries)
    jsonl(base / "qrels_og" / f"{split}.jsonl", og)
    jsonl(base / "qrels_changed" / f"{split}.jsonl", changed)
    jsonl(base / "top_ranked.jsonl", top)
    readme(
        base,
        [
            ("corpus", {"corpus": "corpus.jsonl"}),
            ("queries", {"queries": "queries.jsonl"}),
            ("qrels_og", {split: f"qrels_og/{split}.jsonl"}),
            ("qrels_changed", {split: f"qrels_changed/{split}.jsonl"}),
            ("top_ranked", {"top_ranked": "top_ranked.jsonl"}),
        ],
    )
