"""The instruction table of a benchmark and the one rule that turns it into a text prefix.

Tables are data (`instructions/*.json`, one per benchmark, each naming its source). This module is
the only place that decides which text gets which prefix; `prompts`, `embed` and evaluation all
call `InstructionTable.prefix`, so what users audit is what the model sees.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .errors import UserError

INSTRUCTIONS_DIR = Path(__file__).resolve().parent.parent / "instructions"

# mteb 1.38.30 passes prompt_type=None for STS, classification, clustering, pair classification and
# summarization; "none" is how that case is named in tables and on the command line.
PROMPT_TYPES = ("query", "passage", "none")


@dataclass(frozen=True)
class InstructionTable:
    """One benchmark's instructions, symmetric list and prompt template."""

    benchmark: str
    script: str
    source: str
    template: str
    instructed_prompt_types: frozenset[str]
    symmetric: frozenset[str]
    instructions: dict[str, str]
    path: Path

    @property
    def tasks(self) -> list[str]:
        return sorted(self.instructions)

    def prefix(self, task: str, prompt_type: str | None, use_instruction: bool) -> str:
        """The exact string prepended to a text of `task` that mteb asks for as `prompt_type`.

        Reference rule: with instructions on, a text is prefixed when it is a query, or when its
        task is symmetric (every text of the task is treated alike); an empty instruction means
        no prefix.
        """
        if not use_instruction:
            return ""
        kind = prompt_type or "none"
        if kind not in PROMPT_TYPES:
            raise UserError(f"unknown prompt type {prompt_type!r}; choose one of: {', '.join(PROMPT_TYPES)}")
        instruction = self.instructions.get(task)
        if instruction is None:
            raise UserError(f"task {task!r} has no instruction in {self.path.name}")
        if not instruction:
            return ""
        if kind in self.instructed_prompt_types or task in self.symmetric:
            return self.template.format(instruction)
        return ""

    def prefixes(self, task: str, use_instruction: bool) -> dict[str, str]:
        return {kind: self.prefix(task, kind, use_instruction) for kind in PROMPT_TYPES}


def _read(path: Path) -> InstructionTable:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return InstructionTable(
        benchmark=raw["benchmark"],
        script=raw.get("script", ""),
        source=raw["source"],
        template=raw["template"],
        instructed_prompt_types=frozenset(raw["instructed_prompt_types"]),
        symmetric=frozenset(raw["symmetric"]),
        instructions=dict(raw["instructions"]),
        path=path,
    )


@cache
def all_tables() -> dict[str, InstructionTable]:
    """Every table in `instructions/`, keyed by benchmark name."""
    tables = [_read(p) for p in sorted(INSTRUCTIONS_DIR.glob("*.json"))]
    return {t.benchmark: t for t in tables}


def load_table(benchmark: str) -> InstructionTable:
    tables = all_tables()
    if benchmark not in tables:
        raise UserError(f"no instruction table for benchmark {benchmark!r}; known: {', '.join(sorted(tables))}")
    return tables[benchmark]


def benchmark_of_task(task: str) -> InstructionTable | None:
    """The table (and so the script) that owns `task`, for 'wrong script' messages."""
    for table in all_tables().values():
        if task in table.instructions:
            return table
    return None


def unknown_task_message(task: str, table: InstructionTable) -> str:
    other = benchmark_of_task(task)
    if other is not None and other.benchmark != table.benchmark:
        return f"task {task!r} belongs to {other.benchmark}, not {table.benchmark}; run it with {other.script}"
    close = difflib.get_close_matches(task, table.tasks, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    listing = f"{len(table.tasks)} tasks; see `python -m qzhou_eval prompts`"
    return f"unknown task {task!r} for {table.benchmark}.{hint} ({listing})"
