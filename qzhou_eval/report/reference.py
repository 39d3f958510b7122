"""Published scores shipped in `results/reference/` (facts with their sources)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from ..files import REPO_ROOT

REFERENCE_DIR = REPO_ROOT / "results" / "reference"


def load_reference(name: str) -> dict:
    path = REFERENCE_DIR / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in REFERENCE_DIR.glob("*.json"))
        raise UserError(f"no bundled reference {name!r}; known: {', '.join(known)}")
    return json.loads(path.read_text(encoding="utf-8"))


def published_score(name: str, task: str) -> float:
    """Mean main_score over the published cells of one task (one cell for the demo's STSBenchmark)."""
    cells = [c["main_score"] for entries in load_reference(name)["tasks"][task]["scores"].values() for c in entries]
    return sum(cells) / len(cells)


ALIASES = {"qzhou": "Kingsoft-LLM__QZhou-Embedding", "minilm": "sentence-transformers__all-MiniLM-L6-v2"}


def resolve_reference(name_or_path: str) -> Path:
    """A path to published scores or a result tree, or the name of a bundled file (`qzhou`)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    stem = ALIASES.get(name_or_path, name_or_path)
    bundled = REFERENCE_DIR / f"{stem}.json"
    if bundled.is_file():
        return bundled
    known = ", ".join([*ALIASES, *sorted(p.stem for p in REFERENCE_DIR.glob("*.json"))])
    raise UserError(f"reference not found: {name_or_path} (a file, a result tree, or one of: {known})")


def check_reference(name_or_path: str, model: str | None = None) -> Path:
    """`resolve_reference`, plus the check a table needs: a reference holding several models (or
    revisions) must name one (`NAME` or `NAME@REVISION`). Cheap (no mteb import), so a run can call it
    before any model loads instead of failing at its end."""
    from .summary import load_published, select_reference

    path = resolve_reference(name_or_path)
    select_reference(load_published(path), str(path), model)
    return path
